-- Start a render: read a consistent snapshot and turn the job's entry in renders due into a
-- lease (re-scored now), so a render lost with a killed process is re-sent by the sweep.
-- Updates applied meanwhile find the entry and request nothing; finish_render notices them.
-- KEYS[1] meta   KEYS[2] workers   KEYS[3] chart   KEYS[4] renders due (zset)
-- ARGV[1] tag    ARGV[2] now
-- Returns false if the job is gone, else {meta pairs, worker pairs, {chart version, stale}}.
local meta, workers, chart, renders_due = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local tag, now = ARGV[1], ARGV[2]

if redis.call('EXISTS', meta) == 0 then
  redis.call('ZREM', renders_due, tag)
  return false
end
redis.call('HSET', meta, 'rendered_at', now)
redis.call('ZADD', renders_due, now, tag)
return {redis.call('HGETALL', meta), redis.call('HGETALL', workers),
        redis.call('HMGET', chart, 'version', 'stale')}
