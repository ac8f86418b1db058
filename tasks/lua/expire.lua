-- Delete a job whose maxage has passed, with all its keys.
-- KEYS[1] meta   KEYS[2] workers   KEYS[3] chart   KEYS[4] stats
-- KEYS[5] expiry (zset), then every other zset the job's tag may be in
-- ARGV[1] tag    ARGV[2] now
-- Returns 1 if deleted.
local meta, workers, chart, stats, expiry = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local tag, now = ARGV[1], tonumber(ARGV[2])

local deadline = redis.call('ZSCORE', expiry, tag)
if (not deadline) or tonumber(deadline) > now then return 0 end
redis.call('HINCRBY', stats, 'workers', 0 - redis.call('HLEN', workers))
redis.call('HINCRBY', stats, 'expired_jobs', 1)
redis.call('DEL', meta, workers, chart)
for i = 5, #KEYS do redis.call('ZREM', KEYS[i], tag) end
return 1
