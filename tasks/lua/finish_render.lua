-- Finish a render: keep the chart (if one was drawn) unless the job was re-created or a newer
-- chart is stored; record when time alone will change the chart (a worker turning stale); end
-- the lease, or keep it when the job changed during the render (another render is due).
-- KEYS[1] meta   KEYS[2] chart   KEYS[3] renders due (zset)   KEYS[4] redraws later (zset)
-- ARGV[1] incarnation   ARGV[2] version drawn   ARGV[3] etag   ARGV[4] stale workers drawn
-- ARGV[5] png ('' when the stored chart is still right)   ARGV[6] tag   ARGV[7] redraw at ('')
-- Returns 0 if the job was re-created or deleted, 1 done, 2 if the job changed meanwhile.
local meta, chart, renders_due, redraws = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local incarnation, version, etag, stale, png, tag, redraw_at =
  ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]

if redis.call('HGET', meta, 'incarnation') ~= incarnation then return 0 end
if png ~= '' then
  local stored = tonumber(redis.call('HGET', chart, 'version') or '-1')
  if stored <= tonumber(version) then
    redis.call('HSET', chart, 'version', version, 'etag', etag, 'stale', stale, 'png', png)
    redis.call('HINCRBY', meta, 'renders', 1)
  end
end
if redraw_at ~= '' then redis.call('ZADD', redraws, redraw_at, tag) end
if redis.call('HGET', meta, 'version') ~= version then return 2 end
redis.call('ZREM', renders_due, tag)
return 1
