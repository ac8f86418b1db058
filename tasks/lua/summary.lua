-- Read a job's summary from the fields and indexes apply.lua keeps, in time that does not
-- depend on the number of workers (but for the stale ones at the top of the ETA index).
-- KEYS[1] meta   KEYS[2] workers   KEYS[3] active   KEYS[4] finish   KEYS[5] blocked
-- ARGV[1] now   ARGV[2] stale_after   ARGV[3] most entries of the ETA index to look through
-- Returns false if there is no such job, else {meta values (see FIELDS in tasks.store), number
-- of workers, stale workers, fresh workers without an ETA, projected finish of the job ('' if
-- none can be told)}.
local meta, workers, active, finish, blocked = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local now, stale_after, probe = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])

if redis.call('EXISTS', meta) == 0 then return false end
local values = redis.call('HMGET', meta, 'jobid', 'desc', 'created', 'maxage', 'incarnation',
                          'version', 'running', 'done', 'failed', 'pct_sum', 'last_update',
                          'expected', 'job_failed', 'job_meta')
local stale_before = now - stale_after  -- stale: silent since before this (strictly)
local stale = redis.call('ZCOUNT', active, '-inf', '(' .. stale_before)
local fresh_blocked = redis.call('ZCOUNT', blocked, stale_before, '+inf')
-- The job finishes when its slowest fresh running worker does: the highest projected finish
-- whose worker is not stale.
local finish_at = ''
if fresh_blocked == 0 then
  local top = redis.call('ZREVRANGE', finish, 0, probe - 1, 'WITHSCORES')
  for i = 1, #top, 2 do
    local updated = tonumber(redis.call('ZSCORE', active, top[i]))
    if updated and updated >= stale_before then
      finish_at = top[i + 1]
      break
    end
  end
end
return {values, redis.call('HLEN', workers), stale, fresh_blocked, finish_at}
