-- Take the drain flag if the inbox holds entries and no drain is queued (beat's sweep).
-- KEYS[1] inbox   KEYS[2] drain flag
-- ARGV[1] now     ARGV[2] drain flag ttl (ms)
-- Returns 1 if a drain must be queued now.
--- @include "take_drain_flag"
local inbox, drain_flag = KEYS[1], KEYS[2]
local now, drain_ttl_ms = ARGV[1], ARGV[2]

if redis.call('LLEN', inbox) == 0 then return 0 end
return take_drain_flag(drain_flag, now, drain_ttl_ms)
