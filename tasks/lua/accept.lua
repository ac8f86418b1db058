-- Accept updates: check each one's job (exists, secret, worker and byte limits, its owner's
-- quota), stamp the accepted ones
-- and append them to the inbox, and take the drain flag, in one atomic step. The stamp (the
-- order in which updates win) comes from Redis's clock, made strictly increasing: no web
-- host's clock, stepped back or skewed, can let an older update overwrite a newer one.
-- KEYS[1] inbox   KEYS[2] drain flag   KEYS[3] last stamp given
-- KEYS[4] stats (the count of worker rows of all jobs)   KEYS[5] the store's identity
-- KEYS[6] owners (rows:<owner> -> the rows of the jobs an owner created; see create.lua)
-- KEYS[4j+3 .. 4j+6]  meta, workers, counters and pending of the j-th job named in ARGV
--                     (j = 1, 2, ...)
-- ARGV: now, max_workers, drain_ttl_ms, all_or_nothing ('1' or '0'), max_inbox,
--       max_worker_rows, the store's identity as the caller knows it ('' not to check),
--       max_counters (per worker), max_job_bytes, max_worker_rows per owner, then per update:
--       job index j, tag, workid, row without its stamp (tasks.store.encode_row: a row that
--       carries counters has them after a line feed), secret digest
-- The worker, byte and owner-row bounds count what is stored (as applied) plus what is reserved
-- for updates accepted and not applied yet, this call's included: per worker in pending,
-- 'n,g' (n 1 if it is new, g the bytes its queued updates may add), summed in meta queued_new,
-- queued_bytes and owners queued:<owner>; apply.lua releases a worker's reservation when it
-- applies one of its updates. A job's bytes: per worker its id and stored row (meta 'bytes',
-- kept by apply.lua); an update that does not grow the job is never refused. (The rows of all
-- jobs count only what is stored and this call: that bound may be passed by one inbox's worth.)
-- Returns per update an outcome (domain.model.AcceptOutcome), then 1 if a drain must be queued;
-- an error STORE_CHANGED, writing nothing, if the store's identity is not the one given.
--- @include "secret_matches"
--- @include "take_drain_flag"
local UNKNOWN_JOB, ACCEPTED, TOO_MANY_WORKERS, WRONG_SECRET, BACKLOG, STORAGE_FULL =
  0, 1, 2, 3, 4, 5
local TOO_MANY_COUNTERS, JOB_TOO_LARGE, OWNER_QUOTA = 6, 7, 8
local STAMP_DIGITS = 17  -- tasks.store.STAMP_DIGITS
local NO_PROGRESS = 'r[0.0,1.0,true,""]'  -- apply.lua's row of a new worker posting counters alone
local inbox, drain_flag, last_stamp, stats, owners = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[6]
if ARGV[7] ~= '' and redis.call('HGET', KEYS[5], 'id') ~= ARGV[7] then
  return redis.error_reply('STORE_CHANGED the store is not the one the caller knows')
end
local now, max_workers, drain_ttl_ms = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local all_or_nothing = ARGV[4] == '1'
local max_inbox, max_worker_rows = tonumber(ARGV[5]), tonumber(ARGV[6])
local backlog = redis.call('LLEN', inbox) >= max_inbox
local rows = tonumber(redis.call('HGET', stats, 'workers') or '0')
local max_counters, max_job_bytes, max_owner_rows = tonumber(ARGV[8]), tonumber(ARGV[9]),
                                                    tonumber(ARGV[10])
local owner_rows = {}  -- owner -> its rows, as stored plus reserved
local owner_queued = {}  -- owner -> new workers this call reserves

-- ---- Bytes: the length the worker's row will have once stored (apply.lua's with_progress).
local function stored_length(row, old_length)
  local text = string.match(row, '^[^\n]*')
  if text ~= 'c' then return STAMP_DIGITS + #text end  -- 'c': tasks.store.COUNTERS_ONLY
  return old_length > 0 and old_length or STAMP_DIGITS + #NO_PROGRESS
end

-- ---- Counters: would the worker hold more than max_counters names with these ones? (Names
-- posted but not applied yet are not counted: the bound may be passed by one inbox's worth.)
local function too_many_counters(counters_key, workid, posted)
  local stored = redis.call('HGET', counters_key, workid)
  local names, count = {}, 0
  for _, c in ipairs(stored and cjson.decode(stored) or {}) do
    names[c[1]] = true
    count = count + 1
  end
  for _, c in ipairs(cjson.decode(posted)) do
    if not names[c[1]] then
      names[c[1]] = true
      count = count + 1
    end
  end
  return count > max_counters
end

local outcomes, entries, jobs = {}, {}, {}
local refused = false
for i = 11, #ARGV, 5 do
  local j, tag, workid, row, secret = tonumber(ARGV[i]), ARGV[i + 1], ARGV[i + 2], ARGV[i + 3],
                                      ARGV[i + 4]
  local meta_key, workers_key, pending_key = KEYS[4 * j + 3], KEYS[4 * j + 4], KEYS[4 * j + 6]
  local job = jobs[j]
  if job == nil then
    local meta = redis.call('HMGET', meta_key, 'incarnation', 'secret', 'owner', 'bytes',
                            'queued_new', 'queued_bytes')
    local queued = tonumber(meta[5] or '0')
    job = {incarnation = meta[1], secret = meta[2], owner = meta[3] or '', meta_key = meta_key,
           pending_key = pending_key, size = redis.call('HLEN', workers_key) + queued,
           bytes = tonumber(meta[4] or '0') + tonumber(meta[6] or '0'),
           stored = {}, reserved = {}, changed = {}, new_count = 0, new_bytes = 0}
    if job.owner ~= '' and owner_rows[job.owner] == nil then
      local counts = redis.call('HMGET', owners, 'rows:' .. job.owner, 'queued:' .. job.owner)
      owner_rows[job.owner] = tonumber(counts[1] or '0') + tonumber(counts[2] or '0')
      owner_queued[job.owner] = 0
    end
    jobs[j] = job
  end
  -- the worker's stored row length (0: none) and what its queued updates reserved (false: none)
  local stored = job.stored[workid] or redis.call('HSTRLEN', workers_key, workid)
  job.stored[workid] = stored
  local reserved = job.reserved[workid]
  if reserved == nil then
    local text = redis.call('HGET', pending_key, workid)
    reserved = text and {tonumber(string.match(text, '^(%d+)')),
                         tonumber(string.match(text, ',(%d+)$'))} or false
    job.reserved[workid] = reserved
  end
  local is_new = stored == 0 and not reserved
  local growth = stored_length(row, stored) - stored + (stored == 0 and #workid or 0)
  local extra = math.max(0, growth - (reserved and reserved[2] or 0))  -- beyond the reserved
  local outcome = ACCEPTED
  if not job.incarnation then
    outcome = UNKNOWN_JOB
  elseif not secret_matches(job.secret, secret) then
    outcome = WRONG_SECRET
  elseif backlog then
    outcome = BACKLOG
  elseif is_new and job.size >= max_workers then
    outcome = TOO_MANY_WORKERS
  elseif is_new and rows >= max_worker_rows then
    outcome = STORAGE_FULL
  elseif is_new and job.owner ~= '' and owner_rows[job.owner] >= max_owner_rows then
    outcome = OWNER_QUOTA
  elseif extra > 0 and job.bytes + extra > max_job_bytes then
    outcome = JOB_TOO_LARGE
  end
  local counters_at = outcome == ACCEPTED and string.find(row, '\n', 1, true)
  if counters_at and too_many_counters(KEYS[4 * j + 5], workid, string.sub(row, counters_at + 1))
  then
    outcome = TOO_MANY_COUNTERS
  end
  outcomes[#outcomes + 1] = outcome
  if outcome == ACCEPTED then
    entries[#entries + 1] = {tag, job.incarnation, workid, row}
    if is_new or extra > 0 then
      local n = (is_new or (reserved and reserved[1] == 1)) and 1 or 0
      job.reserved[workid] = {n, (reserved and reserved[2] or 0) + extra}
      job.changed[workid] = true
      job.bytes, job.new_bytes = job.bytes + extra, job.new_bytes + extra
    end
    if is_new then
      job.size, rows, job.new_count = job.size + 1, rows + 1, job.new_count + 1
      if job.owner ~= '' then
        owner_rows[job.owner] = owner_rows[job.owner] + 1
        owner_queued[job.owner] = owner_queued[job.owner] + 1
      end
    end
  else
    refused = true
  end
end
if (refused and all_or_nothing) or #entries == 0 then
  outcomes[#outcomes + 1] = 0
  return outcomes
end
redis.replicate_commands()  -- TIME before writes (a no-op from Redis 7 on)
local clock = redis.call('TIME')
for _, job in pairs(jobs) do
  for workid in pairs(job.changed) do
    local r = job.reserved[workid]
    redis.call('HSET', job.pending_key, workid, r[1] .. ',' .. r[2])
  end
  if job.new_count > 0 then redis.call('HINCRBY', job.meta_key, 'queued_new', job.new_count) end
  if job.new_bytes > 0 then redis.call('HINCRBY', job.meta_key, 'queued_bytes', job.new_bytes) end
end
for owner, n in pairs(owner_queued) do
  if n > 0 then redis.call('HINCRBY', owners, 'queued:' .. owner, n) end
end
local stamp = math.max(tonumber(clock[1]) * 1000000 + tonumber(clock[2]),
                       tonumber(redis.call('GET', last_stamp) or '0') + 1)
for i, e in ipairs(entries) do
  -- STAMP_DIGITS (tasks.store) digits of microseconds, so that stamps compare as strings
  entries[i] = table.concat({e[1], e[2], e[3], string.format('%017d', stamp) .. e[4]}, '\n')
  stamp = stamp + 1
end
redis.call('SET', last_stamp, string.format('%d', stamp - 1))
for i = 1, #entries, 1000 do
  redis.call('RPUSH', inbox, unpack(entries, i, math.min(i + 999, #entries)))
end
outcomes[#outcomes + 1] = take_drain_flag(drain_flag, now, drain_ttl_ms)
return outcomes
