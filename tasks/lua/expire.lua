-- Delete a job whose maxage has passed, with all its keys.
-- UNLINK, not DEL: a 100,000-worker job's keys are freed by a background thread, where DEL
-- would hold Redis for tens of milliseconds per key.
-- KEYS[1] stats   KEYS[2] workers   KEYS[3] expiry (zset)
-- KEYS[4 .. 3+n] the other zsets the job's tag may be in, then every key of the job (its meta
-- first), then (last) owners: the job and its rows leave its owner's counts (see create.lua)
-- ARGV[1] tag    ARGV[2] now    ARGV[3] n
-- Returns 1 if deleted.
local stats, workers, expiry = KEYS[1], KEYS[2], KEYS[3]
local tag, now, zsets = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])

local deadline = redis.call('ZSCORE', expiry, tag)
if (not deadline) or tonumber(deadline) > now then return 0 end
redis.call('HINCRBY', stats, 'workers', 0 - redis.call('HLEN', workers))
redis.call('HINCRBY', stats, 'expired_jobs', 1)
--- @include "release_owner"
release_owner(KEYS[#KEYS], KEYS[4 + zsets], workers)
redis.call('ZREM', expiry, tag)
for i = 4, 3 + zsets do redis.call('ZREM', KEYS[i], tag) end
for i = 4 + zsets, #KEYS - 1 do redis.call('UNLINK', KEYS[i]) end
return 1
