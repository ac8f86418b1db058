-- (Re)create a job with no workers, unless it exists with a secret that was not presented, or
-- it is new and the service already holds max_jobs jobs. No render is due: until the first
-- update, /progress/render answers with a placeholder (renderer/placeholder.py).
-- KEYS[1] meta   KEYS[2] workers   KEYS[3] chart   KEYS[4] expiry (zset)   KEYS[5] recent (zset)
-- KEYS[6] renders due (zset)   KEYS[7] stats   KEYS[8] the store's identity
-- KEYS[9..] the job's indexes, lifetime records and counters (see apply.lua): all deleted
-- ARGV[1] the store's identity as the caller knows it ('' not to check)
-- ARGV[2] tag   ARGV[3] jobid   ARGV[4] desc   ARGV[5] now   ARGV[6] maxage   ARGV[7] incarnation
-- ARGV[8] expires at   ARGV[9] secret digest ('' for none)   ARGV[10] notify URL ('' for none)
-- ARGV[11] max_jobs   ARGV[12] workers expected ('' for no number)
-- ARGV[13] the launcher's meta, a JSON object ('' for none)
-- Returns a domain.model.CreateOutcome: 1 created, 0 wrong secret, 2 too many jobs; an error
-- STORE_CHANGED, writing nothing, if the store's identity is not the one given.
--- @include "secret_matches"
local meta, workers, chart, expiry, recent, renders_due, stats =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]
if ARGV[1] ~= '' and redis.call('HGET', KEYS[8], 'id') ~= ARGV[1] then
  return redis.error_reply('STORE_CHANGED the store is not the one the caller knows')
end
local tag, jobid, desc, now, maxage, incarnation, expires_at, secret, notify, max_jobs, expected =
  ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9], ARGV[10],
  tonumber(ARGV[11]), ARGV[12]
local job_meta = ARGV[13]
local WRONG_SECRET, CREATED, TOO_MANY_JOBS = 0, 1, 2

if not secret_matches(redis.call('HGET', meta, 'secret'), secret) then return WRONG_SECRET end
if redis.call('EXISTS', meta) == 0 and redis.call('ZCARD', expiry) >= max_jobs then
  return TOO_MANY_JOBS
end
redis.call('HINCRBY', stats, 'workers', 0 - redis.call('HLEN', workers))
-- UNLINK: an earlier incarnation's big keys are freed in the background (delete.lua says why)
redis.call('UNLINK', meta, workers, chart)
for i = 9, #KEYS do redis.call('UNLINK', KEYS[i]) end
redis.call('HSET', meta, 'jobid', jobid, 'desc', desc, 'created', now, 'maxage', maxage,
           'incarnation', incarnation, 'version', 0, 'rendered_at', 0)
if secret ~= '' then redis.call('HSET', meta, 'secret', secret) end
if notify ~= '' then redis.call('HSET', meta, 'notify', notify) end
if expected ~= '' then redis.call('HSET', meta, 'expected', expected) end
if job_meta ~= '' then redis.call('HSET', meta, 'job_meta', job_meta) end
redis.call('ZADD', expiry, expires_at, tag)
redis.call('ZADD', recent, now, tag)
redis.call('ZREM', renders_due, tag)  -- a render due for the earlier incarnation is not
return CREATED
