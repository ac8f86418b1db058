-- Claim the oldest inbox entries as one batch record, so that a worker killed while applying
-- them leaves the record for beat's sweep. The drain flag is released; if more entries are
-- waiting it is taken again at once, so the next drain runs in another ingest process.
-- KEYS[1] inbox   KEYS[2] drain flag   KEYS[3] batches (hash)   KEYS[4] batches due (zset)
-- ARGV[1] batch id   ARGV[2] now   ARGV[3] most entries to claim   ARGV[4] drain flag ttl (ms)
-- Returns {1 if a drain must be queued now, the claimed entries...}.
--- @include "take_drain_flag"
local inbox, drain_flag, batches, batches_due = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local batch_id, now, limit, drain_ttl_ms = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]

local entries = redis.call('LRANGE', inbox, 0, limit - 1)
if #entries > 0 then
  redis.call('LTRIM', inbox, #entries, -1)
  redis.call('HSET', batches, batch_id, cjson.encode(entries))
  redis.call('ZADD', batches_due, now, batch_id)
end
redis.call('DEL', drain_flag)
local drain_due = 0
if redis.call('LLEN', inbox) > 0 then drain_due = take_drain_flag(drain_flag, now, drain_ttl_ms) end
table.insert(entries, 1, drain_due)
return entries
