-- Apply one job's share of a batch: per worker the newer stamp wins; updates for another
-- incarnation of the job are dropped. The state letter after a row's stamp keeps the job's
-- counts of running and failed workers current, so completion is noticed here, once per
-- incarnation (HSETNX finished). A change records that a render is due (unless one already is).
-- KEYS[1] job meta   KEYS[2] job workers   KEYS[3] renders due (zset)   KEYS[4] stats
-- ARGV[1] incarnation   ARGV[2] now   ARGV[3] job tag   ARGV[4..] workid, row, workid, row...
-- Returns {rows changed, 1 if a render became due, when the last render started,
--          'done'/'failed' if the job just finished, its notify URL}.
local meta, workers, renders_due, stats = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local incarnation, now, tag = ARGV[1], ARGV[2], ARGV[3]
local STAMP_DIGITS = 17  -- tasks.store.STAMP_DIGITS

if redis.call('HGET', meta, 'incarnation') ~= incarnation then return {0, 0, '0', '', ''} end
redis.call('HINCRBY', meta, 'updates', (#ARGV - 3) / 2)
local function state_of(row) return string.sub(row, STAMP_DIGITS + 1, STAMP_DIGITS + 1) end

local changed, added, running, failed = 0, 0, 0, 0
for i = 4, #ARGV, 2 do
  local workid, new = ARGV[i], ARGV[i + 1]
  local old = redis.call('HGET', workers, workid)
  if (not old) or string.sub(old, 1, STAMP_DIGITS) < string.sub(new, 1, STAMP_DIGITS) then
    redis.call('HSET', workers, workid, new)
    changed = changed + 1
    local was, is = old and state_of(old) or '', state_of(new)
    if not old then added = added + 1 end
    -- letters: domain.model.STORED_LETTER (r running, d done, f failed)
    if was == 'r' then running = running - 1 elseif was == 'f' then failed = failed - 1 end
    if is == 'r' then running = running + 1 elseif is == 'f' then failed = failed + 1 end
  end
end
if changed == 0 then return {0, 0, '0', '', ''} end
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
