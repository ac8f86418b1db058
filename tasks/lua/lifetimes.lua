-- A job's lifetimes summary, from the records apply.lua keeps (track_lifetime), in time that
-- does not grow with the job: how many workers finished, the middle of their durations, the
-- slowest of them, and the running workers that have already run longer than the slowest one
-- (measured on Redis's clock, the one the stamps come from). Reads only.
-- KEYS[1] durations (zset)   KEYS[2] running_since (zset)   KEYS[3] lifetimes (hash)
-- ARGV[1] how many of the slowest to name   ARGV[2] how many overstaying workers to name
-- Returns {now (s, Redis's clock), finished count, {the middle duration, or the two middle
-- ones}, {workid, duration, lifetime record} per slowest worker, slowest first, overstaying
-- count, {workid, started} per overstaying worker, longest running first}.
local durations, running_since, lifetimes = KEYS[1], KEYS[2], KEYS[3]
local slowest_n, overstaying_n = tonumber(ARGV[1]), tonumber(ARGV[2])

local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1e6
local finished = redis.call('ZCARD', durations)
if finished == 0 then return {string.format('%.6f', now), 0, {}, {}, 0, {}} end

local low, high = math.floor((finished - 1) / 2), math.floor(finished / 2)
local middle = {}
local pairs_ = redis.call('ZRANGE', durations, low, high, 'WITHSCORES')
for i = 2, #pairs_, 2 do middle[#middle + 1] = pairs_[i] end

local slowest = {}
local top = redis.call('ZREVRANGE', durations, 0, slowest_n - 1, 'WITHSCORES')
for i = 1, #top, 2 do
  slowest[#slowest + 1] = {top[i], top[i + 1], redis.call('HGET', lifetimes, top[i]) or ''}
end

local cutoff = '(' .. string.format('%.6f', now - tonumber(top[2]))
local overstaying = redis.call('ZCOUNT', running_since, '-inf', cutoff)
local named = {}
if overstaying > 0 then
  local members = redis.call('ZRANGEBYSCORE', running_since, '-inf', cutoff, 'WITHSCORES',
                             'LIMIT', 0, overstaying_n)
  for i = 1, #members, 2 do named[#named + 1] = {members[i], members[i + 1]} end
end
return {string.format('%.6f', now), finished, middle, slowest, overstaying, named}
