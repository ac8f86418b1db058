-- Fail a job as a whole (/progress/fail): record who failed it and why, once per incarnation
-- (the first failure stands; a re-create starts without one), and in the same atomic step
-- make its chart due and mark it finished 'failed'. Completion is noticed once per incarnation
-- (HSETNX finished, as apply.lua does): a job whose worker failed already, or that was done,
-- gets no second hook, and one failed here never gets 'done' later. Workers still report.
-- KEYS[1] meta   KEYS[2] renders due (zset)   KEYS[3] the store's identity
-- ARGV[1] the store's identity as the caller knows it ('' not to check)
-- ARGV[2] tag   ARGV[3] secret digest ('' for none)   ARGV[4] the failure record (JSON,
-- domain.model.JobFailure)   ARGV[5] now
-- Returns {a domain.model.FailOutcome (0 no such job, 1 failed now, 2 wrong secret, 3 failed
-- already), the record that stands, 'failed' if the completion hook is due now, the job's
-- notify URL, 1 if a render became due, when the job's last render started}; an error
-- STORE_CHANGED, writing nothing, if the store's identity is not the one given.
--- @include "secret_matches"
local meta, renders_due = KEYS[1], KEYS[2]
if ARGV[1] ~= '' and redis.call('HGET', KEYS[3], 'id') ~= ARGV[1] then
  return redis.error_reply('STORE_CHANGED the store is not the one the caller knows')
end
local tag, secret, record, now = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local UNKNOWN_JOB, FAILED, WRONG_SECRET, ALREADY_FAILED = 0, 1, 2, 3

if redis.call('EXISTS', meta) == 0 then return {UNKNOWN_JOB, '', '', '', 0, '0'} end
if not secret_matches(redis.call('HGET', meta, 'secret'), secret) then
  return {WRONG_SECRET, '', '', '', 0, '0'}
end
local standing = redis.call('HGET', meta, 'job_failed')
if standing then return {ALREADY_FAILED, standing, '', '', 0, '0'} end
redis.call('HSET', meta, 'job_failed', record)
redis.call('HINCRBY', meta, 'version', 1)  -- the chart and the page show it
local hook = ''
if redis.call('HSETNX', meta, 'finished', 'failed') == 1 then hook = 'failed' end
local render_due = redis.call('ZADD', renders_due, 'NX', now, tag)
local after = redis.call('HMGET', meta, 'rendered_at', 'notify')
return {FAILED, record, hook, hook ~= '' and after[2] or '', render_due, after[1] or '0'}
