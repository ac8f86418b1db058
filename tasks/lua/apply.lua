-- Apply part of a claimed batch, and with its last part delete the batch's record in the same
-- atomic step: if any write fails (Redis out of memory), the record stays and beat's sweep sends
-- the batch again; applying twice is harmless. (A batch is applied in parts of a few hundred
-- updates so that no script holds Redis for long: tasks.store.APPLY_PART.) Per worker the newer
-- stamp wins; updates for another incarnation of their job are dropped. A change records that a
-- render is due (unless one already is).
-- Each job's summary and indexes are kept current here, so that no read has to go through all
-- of a job's rows (tasks.store.Store.summaries, problems, worker_page):
--   meta     running, done, failed (counts), pct_sum (the sum of the percents, clipped to
--            0..100, of the workers not done: each done one counts exactly 100, so a finished job
--            is exactly 100 % whatever the rounding), last_update; completion is noticed once
--            per incarnation (HSETNX finished): a failure at once, done when no worker is
--            unfinished and, if the job expects a number of workers, that many are done
--   order    every worker, in natural order of its id: the member is the id's natural_bytes
--            (domain.model), NUL, and what the chart draws of the worker packed in 13 bytes
--            (percent as a float32, time of update as a float64, state letter; tasks.store.BAR),
--            so a render reads one sorted set instead of decoding every worker's JSON
--   failed   failed workers, by time of update
--   active   running workers, by time of update: the stale ones are the oldest
--   finish   running workers with an ETA, by projected finish time (domain.model.summarize)
--   blocked  running workers without one (no progress yet, or too little history), by update
-- and each worker's lifetime (track_lifetime below): lifetimes, durations, running_since.
-- Also kept: meta 'bytes' (the ids and rows of the job's workers, tasks/lua/accept.lua's bound),
-- the job owner's row count (create.lua), the release of what accept.lua reserved for a worker
-- (pending, queued_new, queued_bytes, the owner's queued:<owner>: once per worker whatever
-- the order its updates are applied in, so applying again releases nothing more), and, with
-- idle_expiry, the job's deadline in expiry:
-- min(created + maxage, now + idle_expiry), so a job nobody updates goes before its maxage.
-- KEYS[1] batches (hash)   KEYS[2] batches due (zset)   KEYS[3] renders due (zset)   KEYS[4] stats
-- KEYS[5] owners (hash)   KEYS[6] expiry (zset)
-- KEYS[6+K(j-1)+1 .. 6+Kj]  of the j-th job of the batch (j = 1, 2, ...), K = KEYS_PER_JOB:
--                     meta, workers, order, failed, active, finish, blocked,
--                     lifetimes, durations, running_since, counters, pending
-- ARGV[1] batch id   ARGV[2] now   ARGV[3] '1' for the batch's last part
-- ARGV[4] idle_expiry (seconds, 0: off)
-- ARGV[5..] per job: tag, incarnation, number of updates n, then n triples of workid, row,
--           natural-order member; then number of counter updates m, then m triples of
--           workid, stamp, counters (see merge_counters)
-- Returns per job {rows changed, 1 if a render became due, when the job's last render started,
--                  'done'/'failed' if the job just finished, its notify URL}.
local batches, batches_due, renders_due, stats = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local batch_id, now, last_part = ARGV[1], ARGV[2], ARGV[3] == '1'
local owners, expiry, idle_expiry = KEYS[5], KEYS[6], tonumber(ARGV[4])
local STAMP_DIGITS = 17  -- tasks.store.STAMP_DIGITS
local ETA_HISTORY = 5  -- seconds of history before a worker's rate is trusted (domain.model)
local NOTHING = {0, 0, '0', '', ''}
local KEYS_PER_JOB = 12
local COUNTERS_ONLY = 'c'  -- tasks.store.COUNTERS_ONLY: the row of an update of counters alone
local NO_PROGRESS = 'r[0.0,1.0,true,""]'  -- a new worker posting counters alone: 0 of 1

-- A stored row: stamp (microseconds), state letter (domain.model.STORED_LETTER: r running,
-- d done, f failed), then the JSON of [current, total, ok, desc].
local function parse(row)
  local values = cjson.decode(string.sub(row, STAMP_DIGITS + 2))
  local current, total = values[1], values[2]
  local percent, drawn = 0, 0
  if total > 0 then
    drawn = 100 * current / total
    percent = math.min(100, math.max(0, drawn))
  end
  return {
    stamp = string.sub(row, 1, STAMP_DIGITS),
    updated = tonumber(string.sub(row, 1, STAMP_DIGITS)) / 1e6,
    state = string.sub(row, STAMP_DIGITS + 1, STAMP_DIGITS + 1),
    current = current, total = total, percent = percent, drawn = drawn,
  }
end

local function bar(parsed)
  return struct.pack('<fd', math.max(-3e38, math.min(3e38, parsed.drawn)), parsed.updated)
    .. parsed.state
end

-- ---- Lifetimes: when each worker started and finished (tasks/store.py: lifetimes,
-- durations, running_since; read with the rows and by tasks/lua/lifetimes.lua).
--   lifetimes      worker -> 'S' or 'S F': S the stamp of its first update in this incarnation
--                  (the earliest, should an older update be applied after a newer one), F the
--                  stamp of the update that turned it done or failed (gone if it runs again).
--                  Stamps are accept.lua's, from Redis's clock.
--   durations      done and failed workers -> (F - S) seconds: median, slowest, histogram
--   running_since  running workers -> S seconds: who has run longer than any finished one
-- Only a worker first seen with this script has a record (one seen before it has none). A
-- running worker's next progress update changes none of it, and costs no command here.
local function track_lifetime(k, workid, old, new, applied)
  if applied and old and (old.state == 'r') == (new.state == 'r') then return end
  local lifetimes, durations, running_since = k[8], k[9], k[10]
  local record = redis.call('HGET', lifetimes, workid)
  if old and not record then return end
  local started, finished = new.stamp, nil
  if record then
    local s, f = string.match(record, '^(%d+) ?(%d*)$')
    started = new.stamp < s and new.stamp or s  -- STAMP_DIGITS digits: they compare as text
    if f ~= '' then finished = f end
    if not applied and started == s then return end  -- an older update, and not the first
  end
  local state = old and old.state or new.state
  if applied then
    state = new.state
    finished = new.state ~= 'r' and new.stamp or nil
  end
  redis.call('HSET', lifetimes, workid, finished and (started .. ' ' .. finished) or started)
  if state == 'r' then
    redis.call('ZREM', durations, workid)
    redis.call('ZADD', running_since, tonumber(started) / 1e6, workid)
  else
    redis.call('ZREM', running_since, workid)
    local ran = (tonumber(finished or new.stamp) - tonumber(started)) / 1e6
    redis.call('ZADD', durations, ran, workid)
  end
end

-- ---- Counters: the free-form values a worker posts (tasks/store.py: counters, with_counters).
--   counters  worker -> JSON array of [name, value (as JSON text), colour, stamp], in the order
--             first posted; per counter the newer stamp wins, so updates merge name by name.
-- An update of counters alone carries the row COUNTERS_ONLY: the worker's row as it is, stamped
-- anew (it is alive, so not stale), or for a worker not seen before one running at 0 of 1
-- (as the client reports a worker whose total is not known yet).
local function with_progress(row, old_row)
  if string.sub(row, STAMP_DIGITS + 1) ~= COUNTERS_ONLY then return row end
  local stamp = string.sub(row, 1, STAMP_DIGITS)
  return stamp .. (old_row and string.sub(old_row, STAMP_DIGITS + 1) or NO_PROGRESS)
end

-- Merge ARGV[first .. last] (triples of workid, stamp, JSON array of [name, value, colour]);
-- returns how many workers' counters changed.
local function merge_counters(counters_key, first, last)
  local merged = 0
  for i = first, last, 3 do
    local workid, stamp = ARGV[i], ARGV[i + 1]
    local stored_text = redis.call('HGET', counters_key, workid)
    local stored = stored_text and cjson.decode(stored_text) or {}
    local at, changed = {}, false
    for x, c in ipairs(stored) do at[c[1]] = x end
    for _, c in ipairs(cjson.decode(ARGV[i + 2])) do
      local x = at[c[1]]
      if x == nil then
        x = #stored + 1
        at[c[1]] = x
      end
      if stored[x] == nil or stored[x][4] < stamp then  -- STAMP_DIGITS digits: compare as text
        stored[x] = {c[1], c[2], c[3], stamp}
        changed = true
      end
    end
    if changed then
      redis.call('HSET', counters_key, workid, cjson.encode(stored))
      merged = merged + 1
    end
  end
  return merged
end

local function apply_job(k, tag, incarnation, first, last, counters_first, counters_last)
  local meta, workers, order, failed_set, active, finish, blocked =
    k[1], k[2], k[3], k[4], k[5], k[6], k[7]
  local job = redis.call('HMGET', meta, 'incarnation', 'created', 'expected', 'owner', 'maxage')
  if job[1] ~= incarnation then return NOTHING end
  local created, expected = tonumber(job[2]), tonumber(job[3] or '0')
  redis.call('HINCRBY', meta, 'updates', (last - first + 1) / 3)

  local changed, added, bytes = 0, 0, 0
  local released_new, released_bytes = 0, 0
  local counts = {r = 0, d = 0, f = 0}
  local pct_change, last_update = 0, 0
  for i = first, last, 3 do
    local workid, row, member = ARGV[i], ARGV[i + 1], ARGV[i + 2]
    local reserved = redis.call('HGET', k[12], workid)
    if reserved then
      redis.call('HDEL', k[12], workid)
      released_new = released_new + tonumber(string.match(reserved, '^(%d+)'))
      released_bytes = released_bytes + tonumber(string.match(reserved, ',(%d+)$'))
    end
    local old_row = redis.call('HGET', workers, workid)
    row = with_progress(row, old_row)
    local new = parse(row)
    local old = old_row and parse(old_row)
    local applied = (not old) or old.stamp < new.stamp
    track_lifetime(k, workid, old, new, applied)
    if applied then
      redis.call('HSET', workers, workid, row)
      bytes = bytes + #row - (old_row and #old_row or 0) + (old_row and 0 or #workid)
      if old then redis.call('ZREM', order, member .. '\0' .. bar(old)) end
      redis.call('ZADD', order, 0, member .. '\0' .. bar(new))
      changed = changed + 1
      if old then
        counts[old.state] = counts[old.state] - 1
        if old.state ~= 'd' then pct_change = pct_change - old.percent end
        if old.state == 'f' then redis.call('ZREM', failed_set, workid) end
        if old.state == 'r' then
          redis.call('ZREM', active, workid)
          redis.call('ZREM', finish, workid)
          redis.call('ZREM', blocked, workid)
        end
      else
        added = added + 1
      end
      counts[new.state] = counts[new.state] + 1
      if new.state ~= 'd' then pct_change = pct_change + new.percent end
      last_update = math.max(last_update, new.updated)
      if new.state == 'f' then redis.call('ZADD', failed_set, new.updated, workid) end
      if new.state == 'r' then
        redis.call('ZADD', active, new.updated, workid)
        local history = new.updated - created
        if new.current > 0 and history >= ETA_HISTORY then
          local finish_at = new.updated + history * (new.total - new.current) / new.current
          redis.call('ZADD', finish, finish_at, workid)
        else
          redis.call('ZADD', blocked, new.updated, workid)
        end
      end
    end
  end
  if released_new > 0 then
    redis.call('HINCRBY', meta, 'queued_new', 0 - released_new)
    if job[4] then
      local field = 'queued:' .. job[4]
      if redis.call('HINCRBY', owners, field, 0 - released_new) <= 0 then
        redis.call('HDEL', owners, field)
      end
    end
  end
  if released_bytes > 0 then redis.call('HINCRBY', meta, 'queued_bytes', 0 - released_bytes) end
  changed = changed + merge_counters(k[11], counters_first, counters_last)
  if changed == 0 then return NOTHING end
  redis.call('HINCRBY', meta, 'version', 1)
  redis.call('HINCRBY', stats, 'workers', added)
  if bytes ~= 0 then redis.call('HINCRBY', meta, 'bytes', bytes) end
  if job[4] and added > 0 then redis.call('HINCRBY', owners, 'rows:' .. job[4], added) end
  if idle_expiry > 0 then
    local deadline = math.min(created + tonumber(job[5]), tonumber(now) + idle_expiry)
    redis.call('ZADD', expiry, 'XX', string.format('%.6f', deadline), tag)
  end
  local done = redis.call('HINCRBY', meta, 'done', counts.d)
  redis.call('HINCRBYFLOAT', meta, 'pct_sum', pct_change)
  if last_update > tonumber(redis.call('HGET', meta, 'last_update') or '0') then
    redis.call('HSET', meta, 'last_update', string.format('%.6f', last_update))
  end
  local running = redis.call('HINCRBY', meta, 'running', counts.r)
  local failed = redis.call('HINCRBY', meta, 'failed', counts.f)
  local finished = ''
  if failed > 0 or (running == 0 and done >= expected) then
    finished = failed > 0 and 'failed' or 'done'
    if redis.call('HSETNX', meta, 'finished', finished) == 0 then finished = '' end
  end
  local render_due = redis.call('ZADD', renders_due, 'NX', now, tag)
  local after = redis.call('HMGET', meta, 'rendered_at', 'notify')
  return {changed, render_due, after[1], finished, finished ~= '' and after[2] or ''}
end

local results, i, j = {}, 5, 1
while i <= #ARGV do
  local tag, incarnation, n = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  local first = i + 3
  local k = {}
  for x = 1, KEYS_PER_JOB do k[x] = KEYS[6 + KEYS_PER_JOB * (j - 1) + x] end
  local counted = first + 3 * n  -- the job's counters: their number m, then m triples
  local m = tonumber(ARGV[counted])
  results[j] = apply_job(k, tag, incarnation, first, counted - 1, counted + 1, counted + 3 * m)
  i, j = counted + 1 + 3 * m, j + 1
end
if last_part then
  redis.call('HDEL', batches, batch_id)
  redis.call('ZREM', batches_due, batch_id)
end
return results
