-- Take a job that is going away out of its owner's counts (tasks/lua/create.lua charges them):
-- one job, its rows, and the new workers reserved for its queued updates (accept.lua).
local function release_owner(owners, meta_key, workers_key)
  local owner, queued = unpack(redis.call('HMGET', meta_key, 'owner', 'queued_new'))
  if not owner then return end
  local counts = {jobs = 1, rows = redis.call('HLEN', workers_key), queued = tonumber(queued or '0')}
  for what, n in pairs(counts) do
    local field = what .. ':' .. owner
    if n > 0 and redis.call('HINCRBY', owners, field, 0 - n) <= 0 then
      redis.call('HDEL', owners, field)
    end
  end
end
