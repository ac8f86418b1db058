-- Apply a claimed batch and delete its record, as one atomic step: if any write fails (Redis
-- out of memory), the record stays and beat's sweep sends the batch again; applying twice is
-- harmless. Per worker the newer stamp wins; updates for another incarnation of their job are
-- dropped. The state letter after a row's stamp keeps each job's counts of running and failed
-- workers current, so completion is noticed here, once per incarnation (HSETNX finished). A
-- change records that a render is due (unless one already is).
-- KEYS[1] batches (hash)   KEYS[2] batches due (zset)   KEYS[3] renders due (zset)   KEYS[4] stats
-- KEYS[2j+3], KEYS[2j+4]   meta and workers of the j-th job of the batch (j = 1, 2, ...)
-- ARGV[1] batch id   ARGV[2] now
-- ARGV[3..] per job: tag, incarnation, number of updates n, then n pairs of workid, row
-- Returns per job {rows changed, 1 if a render became due, when the job's last render started,
--                  'done'/'failed' if the job just finished, its notify URL}.
local batches, batches_due, renders_due, stats = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local batch_id, now = ARGV[1], ARGV[2]
local STAMP_DIGITS = 17  -- tasks.store.STAMP_DIGITS
local NOTHING = {0, 0, '0', '', ''}

local function state_of(row) return string.sub(row, STAMP_DIGITS + 1, STAMP_DIGITS + 1) end
local function stamp_of(row) return string.sub(row, 1, STAMP_DIGITS) end

local function apply_job(meta, workers, tag, incarnation, first, last)
  if redis.call('HGET', meta, 'incarnation') ~= incarnation then return NOTHING end
  redis.call('HINCRBY', meta, 'updates', (last - first + 1) / 2)
  local changed, added, running, failed = 0, 0, 0, 0
  for i = first, last, 2 do
    local workid, new = ARGV[i], ARGV[i + 1]
    local old = redis.call('HGET', workers, workid)
    if (not old) or stamp_of(old) < stamp_of(new) then
      redis.call('HSET', workers, workid, new)
      changed = changed + 1
      local was, is = old and state_of(old) or '', state_of(new)
      if not old then added = added + 1 end
      -- letters: domain.model.STORED_LETTER (r running, d done, f failed)
      if was == 'r' then running = running - 1 elseif was == 'f' then failed = failed - 1 end
      if is == 'r' then running = running + 1 elseif is == 'f' then failed = failed + 1 end
    end
  end
  if changed == 0 then return NOTHING end
  redis.call('HINCRBY', meta, 'version', 1)
  redis.call('HINCRBY', stats, 'workers', added)
  running = redis.call('HINCRBY', meta, 'running', running)
  failed = redis.call('HINCRBY', meta, 'failed', failed)
  local finished = ''
  if failed > 0 or running == 0 then
    finished = failed > 0 and 'failed' or 'done'
    if redis.call('HSETNX', meta, 'finished', finished) == 0 then finished = '' end
  end
  local render_due = redis.call('ZADD', renders_due, 'NX', now, tag)
  local job = redis.call('HMGET', meta, 'rendered_at', 'notify')
  return {changed, render_due, job[1], finished, finished ~= '' and job[2] or ''}
end

local results, i, j = {}, 3, 1
while i <= #ARGV do
  local tag, incarnation, n = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  local first = i + 3
  results[j] = apply_job(KEYS[2 * j + 3], KEYS[2 * j + 4], tag, incarnation, first,
                         first + 2 * n - 1)
  i, j = first + 2 * n, j + 1
end
redis.call('HDEL', batches, batch_id)
redis.call('ZREM', batches_due, batch_id)
return results
