-- Start a render: read the job's meta and, for a small job, what its chart needs; turn the
-- job's entry in renders due into a lease (re-scored now), so a render lost with a killed
-- process is re-sent by the sweep. Updates applied meanwhile find the entry and request
-- nothing; finish_render notices.
-- What the chart needs of every worker is in the order index's members (apply.lua), already
-- in natural order; the full rows only for a job small enough that the chart prints them.
-- A larger job's members are not read here: copying them out of Lua costs time that grows
-- with the job (about 27 MB and 1-3 s for 100,000 workers with 256-byte ids), so the caller
-- reads them in bounded pieces after this (Store.begin_render says why the chart stays right).
-- KEYS[1] meta   KEYS[2] workers   KEYS[3] chart   KEYS[4] renders due (zset)   KEYS[5] order
-- KEYS[6] counters
-- ARGV[1] tag    ARGV[2] now    ARGV[3] most workers read here, with their full rows
-- Returns false if the job is gone, else {meta pairs, {chart version, stale}, the number of
-- workers, the order's members and the full rows in that order with their counters (all three
-- empty when there are more workers than ARGV[3])}.
local meta, workers, chart, renders_due, order = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local counters_key = KEYS[6]
local tag, now, full_rows_max = ARGV[1], ARGV[2], tonumber(ARGV[3])
local BAR_BYTES = 13  -- tasks.store.BAR

if redis.call('EXISTS', meta) == 0 then
  redis.call('ZREM', renders_due, tag)
  return false
end
redis.call('HSET', meta, 'rendered_at', now)
redis.call('ZADD', renders_due, now, tag)

local count = redis.call('ZCARD', order)
local members, rows, counters = {}, {}, {}
if count > 0 and count <= full_rows_max then
  members = redis.call('ZRANGE', order, 0, -1)
  local ids = {}
  for i, member in ipairs(members) do
    ids[i] = string.sub(member, string.find(member, '\0', 1, true) + 1, -BAR_BYTES - 2)
  end
  rows = redis.call('HMGET', workers, unpack(ids))
  counters = redis.call('HMGET', counters_key, unpack(ids))
end
return {redis.call('HGETALL', meta), redis.call('HMGET', chart, 'version', 'stale'), count,
        members, rows, counters}
