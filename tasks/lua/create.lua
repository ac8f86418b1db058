-- (Re)create a job with no workers, unless it exists with a secret that was not presented, or
-- it is new (to its owner) and the service already holds max_jobs jobs or the owner
-- jobs_per_owner jobs. No render is due: until the first
-- update, /progress/render answers with a placeholder (renderer/placeholder.py).
-- KEYS[1] meta   KEYS[2] workers   KEYS[3] chart   KEYS[4] expiry (zset)   KEYS[5] recent (zset)
-- KEYS[6] renders due (zset)   KEYS[7] stats   KEYS[8] the store's identity
-- KEYS[9] owners (jobs:<owner>, rows:<owner>, queued:<owner>: what each owner holds, for its
-- quotas; queued: new workers reserved by accept.lua)
-- KEYS[10..] the job's indexes, lifetime records and counters (see apply.lua): all deleted
-- ARGV[1] the store's identity as the caller knows it ('' not to check)
-- ARGV[2] tag   ARGV[3] jobid   ARGV[4] desc   ARGV[5] now   ARGV[6] maxage   ARGV[7] incarnation
-- ARGV[8] expires at   ARGV[9] secret digest ('' for none)   ARGV[10] the hook, URL and job_mac ('' for none)
-- ARGV[11] max_jobs   ARGV[12] workers expected ('' for no number)
-- ARGV[13] the launcher's meta, a JSON object ('' for none)
-- ARGV[14] owner (the creating address; '' for none)   ARGV[15] jobs_per_owner
-- A re-created job passes to its new owner, with its rows (none: they are deleted).
-- Returns a domain.model.CreateOutcome: 1 created, 0 wrong secret, 2 too many jobs, 3 the owner
-- holds too many jobs; an error
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
local job_meta, owner, jobs_per_owner = ARGV[13], ARGV[14], tonumber(ARGV[15])
local owners = KEYS[9]
local WRONG_SECRET, CREATED, TOO_MANY_JOBS, OWNER_QUOTA = 0, 1, 2, 3

-- Add n to an owner's count `what` ('jobs' or 'rows'), dropping the field at 0.
local function charge(who, what, n)
  if who == '' or n == 0 then return end
  local field = what .. ':' .. who
  if redis.call('HINCRBY', owners, field, n) <= 0 then redis.call('HDEL', owners, field) end
end

if not secret_matches(redis.call('HGET', meta, 'secret'), secret) then return WRONG_SECRET end
local exists = redis.call('EXISTS', meta) == 1
if not exists and redis.call('ZCARD', expiry) >= max_jobs then
  return TOO_MANY_JOBS
end
local old_owner = exists and (redis.call('HGET', meta, 'owner') or '') or nil
if old_owner ~= owner and owner ~= ''
    and tonumber(redis.call('HGET', owners, 'jobs:' .. owner) or '0') >= jobs_per_owner then
  return OWNER_QUOTA
end
local rows = redis.call('HLEN', workers)
redis.call('HINCRBY', stats, 'workers', 0 - rows)
if old_owner then
  charge(old_owner, 'rows', 0 - rows)
  charge(old_owner, 'jobs', -1)
  charge(old_owner, 'queued', 0 - tonumber(redis.call('HGET', meta, 'queued_new') or '0'))
end
charge(owner, 'jobs', 1)
-- UNLINK: an earlier incarnation's big keys are freed in the background (delete.lua says why)
redis.call('UNLINK', meta, workers, chart)
for i = 10, #KEYS do redis.call('UNLINK', KEYS[i]) end
redis.call('HSET', meta, 'jobid', jobid, 'desc', desc, 'created', now, 'maxage', maxage,
           'incarnation', incarnation, 'version', 0, 'rendered_at', 0)
if secret ~= '' then redis.call('HSET', meta, 'secret', secret) end
if notify ~= '' then redis.call('HSET', meta, 'notify', notify) end
if expected ~= '' then redis.call('HSET', meta, 'expected', expected) end
if job_meta ~= '' then redis.call('HSET', meta, 'job_meta', job_meta) end
if owner ~= '' then redis.call('HSET', meta, 'owner', owner) end
redis.call('ZADD', expiry, expires_at, tag)
redis.call('ZADD', recent, now, tag)
redis.call('ZREM', renders_due, tag)  -- a render due for the earlier incarnation is not
return CREATED
