-- Jobs whose redraw time has come (a worker turned stale): move them to renders due, unless a
-- render is already due.
-- KEYS[1] redraws later (zset)   KEYS[2] renders due (zset)
-- ARGV[1] now   ARGV[2] most jobs to wake
-- Returns the tags of the jobs now due a render.
local redraws, renders_due = KEYS[1], KEYS[2]
local now, limit = ARGV[1], ARGV[2]

local due = redis.call('ZRANGEBYSCORE', redraws, '-inf', now, 'LIMIT', 0, limit)
local woken = {}
for _, tag in ipairs(due) do
  redis.call('ZREM', redraws, tag)
  if redis.call('ZADD', renders_due, 'NX', now, tag) == 1 then woken[#woken + 1] = tag end
end
return woken
