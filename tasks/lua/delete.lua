-- Delete a job on request, with every key of it and its place in the service-wide sets, in one
-- atomic step; refused without the job's secret when it has one (as update and create are).
-- Updates still queued for it (inbox, claimed batches) are left where they are: apply.lua drops
-- them, since the job's incarnation is gone (and a re-created job has another). A render under
-- way finds the job gone when it finishes (finish_render.lua) and stores nothing.
-- UNLINK, not DEL: a 100,000-worker job's keys are freed by a background thread, where DEL
-- would hold Redis for tens of milliseconds per key.
-- KEYS[1] stats   KEYS[2] meta   KEYS[3] workers
-- KEYS[4 .. 3+n] the service-wide sets the job's tag may be in, then every key of the job,
-- then (last) owners: the job and its rows leave its owner's counts (see create.lua)
-- ARGV[1] tag   ARGV[2] secret digest ('' for none)   ARGV[3] n
-- Returns a domain.model.DeleteOutcome: 0 no such job, 1 deleted, 2 wrong secret.
--- @include "secret_matches"
local stats, meta, workers = KEYS[1], KEYS[2], KEYS[3]
local tag, secret, zsets = ARGV[1], ARGV[2], tonumber(ARGV[3])
local UNKNOWN_JOB, DELETED, WRONG_SECRET = 0, 1, 2

if redis.call('EXISTS', meta) == 0 then return UNKNOWN_JOB end
if not secret_matches(redis.call('HGET', meta, 'secret'), secret) then return WRONG_SECRET end
redis.call('HINCRBY', stats, 'workers', 0 - redis.call('HLEN', workers))
redis.call('HINCRBY', stats, 'deleted_jobs', 1)
--- @include "release_owner"
release_owner(KEYS[#KEYS], meta, workers)
for i = 4, 3 + zsets do redis.call('ZREM', KEYS[i], tag) end
for i = 4 + zsets, #KEYS - 1 do redis.call('UNLINK', KEYS[i]) end
return DELETED
