-- Take a job that is going away out of its owner's counts (tasks/lua/create.lua charges them):
-- one job, and its rows.
local function release_owner(owners, meta_key, workers_key)
  local owner = redis.call('HGET', meta_key, 'owner')
  if not owner then return end
  for what, n in pairs({jobs = 1, rows = redis.call('HLEN', workers_key)}) do
    local field = what .. ':' .. owner
    if n > 0 and redis.call('HINCRBY', owners, field, 0 - n) <= 0 then
      redis.call('HDEL', owners, field)
    end
  end
end
