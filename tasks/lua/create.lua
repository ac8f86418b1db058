-- (Re)create a job with no workers, unless it exists with a secret that was not presented.
-- A render becomes due at once (the first chart).
-- KEYS[1] meta   KEYS[2] workers   KEYS[3] chart   KEYS[4] expiry (zset)   KEYS[5] recent (zset)
-- KEYS[6] renders due (zset)   KEYS[7] stats
-- ARGV[1] tag   ARGV[2] jobid   ARGV[3] desc   ARGV[4] now   ARGV[5] maxage   ARGV[6] incarnation
-- ARGV[7] expires at   ARGV[8] secret digest ('' for none)   ARGV[9] notify URL ('' for none)
-- Returns 1 if created, 0 if the secret did not match.
--- @include "secret_matches"
local meta, workers, chart, expiry, recent, renders_due, stats =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local tag, jobid, desc, now, maxage, incarnation, expires_at, secret, notify =
  ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9]

if not secret_matches(redis.call('HGET', meta, 'secret'), secret) then return 0 end
redis.call('HINCRBY', stats, 'workers', 0 - redis.call('HLEN', workers))
redis.call('DEL', meta, workers, chart)
redis.call('HSET', meta, 'jobid', jobid, 'desc', desc, 'created', now, 'maxage', maxage,
           'incarnation', incarnation, 'version', 0, 'rendered_at', 0)
if secret ~= '' then redis.call('HSET', meta, 'secret', secret) end
if notify ~= '' then redis.call('HSET', meta, 'notify', notify) end
redis.call('ZADD', expiry, expires_at, tag)
redis.call('ZADD', recent, now, tag)
redis.call('ZADD', renders_due, now, tag)
return 1
