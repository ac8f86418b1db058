-- One piece of a job's finished workers, for its lifetimes histogram: read a piece at a time
-- (Store.finished_durations), so that no call's time grows with the job.
-- KEYS[1] durations (zset)   KEYS[2] failed (zset)
-- ARGV[1] first index   ARGV[2] last index (of durations, shortest first)
-- Returns {workid, duration, 1 if it failed else 0, ...} for those indexes.
local durations, failed = KEYS[1], KEYS[2]
local piece = redis.call('ZRANGE', durations, ARGV[1], ARGV[2], 'WITHSCORES')
local out = {}
for i = 1, #piece, 2 do
  out[#out + 1] = piece[i]
  out[#out + 1] = piece[i + 1]
  out[#out + 1] = redis.call('ZSCORE', failed, piece[i]) and 1 or 0
end
return out
