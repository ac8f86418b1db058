-- Take the members of a due-set that are overdue, re-scoring them now, so that each is re-sent
-- at most once per redeliver_after however often the sweep runs.
-- KEYS[1] the due-set (zset)
-- ARGV[1] overdue before   ARGV[2] now   ARGV[3] most members to take
-- Returns the members taken.
local due_set = KEYS[1]
local before, now, limit = ARGV[1], ARGV[2], ARGV[3]

local overdue = redis.call('ZRANGEBYSCORE', due_set, '-inf', before, 'LIMIT', 0, limit)
for _, member in ipairs(overdue) do redis.call('ZADD', due_set, 'XX', now, member) end
return overdue
