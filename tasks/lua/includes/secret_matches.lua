-- Whether a presented secret digest matches the stored one, in time that does not depend on
-- where they differ. No stored digest: the job is open to all, as the MWA guide has it.
local function secret_matches(stored, presented)
  if not stored then return true end
  if #stored ~= #presented then return false end
  local diff = 0
  for i = 1, #stored do diff = bit.bor(diff, bit.bxor(stored:byte(i), presented:byte(i))) end
  return diff == 0
end
