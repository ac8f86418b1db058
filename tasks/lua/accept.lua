-- Accept updates: check each one's job (exists, secret, worker limit), append the accepted
-- ones to the inbox and take the drain flag, in one atomic step.
-- KEYS[1] inbox        KEYS[2] drain flag
-- KEYS[2j+1], KEYS[2j+2]  meta and workers of the j-th job named in ARGV (j = 1, 2, ...)
-- ARGV: now, max_workers, drain_ttl_ms, all_or_nothing ('1' or '0'), then per update:
--       job index j, tag, workid, row, secret digest
-- Returns per update an outcome (domain.model.AcceptOutcome), then 1 if a drain must be queued.
--- @include "secret_matches"
--- @include "take_drain_flag"
local UNKNOWN_JOB, ACCEPTED, TOO_MANY_WORKERS, WRONG_SECRET = 0, 1, 2, 3
local inbox, drain_flag = KEYS[1], KEYS[2]
local now, max_workers, drain_ttl_ms = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local all_or_nothing = ARGV[4] == '1'

local outcomes, entries, jobs = {}, {}, {}
local refused = false
for i = 5, #ARGV, 5 do
  local j, tag, workid, row, secret = tonumber(ARGV[i]), ARGV[i + 1], ARGV[i + 2], ARGV[i + 3],
                                      ARGV[i + 4]
  local meta_key, workers_key = KEYS[2 * j + 1], KEYS[2 * j + 2]
  local job = jobs[j]
  if job == nil then
    local meta = redis.call('HMGET', meta_key, 'incarnation', 'secret')
    job = {incarnation = meta[1], secret = meta[2], size = redis.call('HLEN', workers_key)}
    jobs[j] = job
  end
  local outcome = ACCEPTED
  if not job.incarnation then
    outcome = UNKNOWN_JOB
  elseif not secret_matches(job.secret, secret) then
    outcome = WRONG_SECRET
  elseif job.size >= max_workers and redis.call('HEXISTS', workers_key, workid) == 0 then
    outcome = TOO_MANY_WORKERS
  end
  outcomes[#outcomes + 1] = outcome
  if outcome == ACCEPTED then
    entries[#entries + 1] = table.concat({tag, job.incarnation, workid, row}, '\n')
  else
    refused = true
  end
end
if (refused and all_or_nothing) or #entries == 0 then
  outcomes[#outcomes + 1] = 0
  return outcomes
end
for i = 1, #entries, 1000 do
  redis.call('RPUSH', inbox, unpack(entries, i, math.min(i + 999, #entries)))
end
outcomes[#outcomes + 1] = take_drain_flag(drain_flag, now, drain_ttl_ms)
return outcomes
