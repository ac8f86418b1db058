-- Take the "drain queued" flag unless a drain is already queued or running: 1 if the caller
-- must now queue a drain (tasks.pipeline.Pipeline.ensure_drain), else 0. The flag expires, so a
-- drain message lost with a killed process is replaced by a later caller or by beat's sweep.
local function take_drain_flag(flag, now, ttl_ms)
  if redis.call('SET', flag, now, 'NX', 'PX', ttl_ms) then return 1 end
  return 0
end
