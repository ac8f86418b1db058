-- Give the store an identity if it has none, and return it: written once, by whichever process
-- first finds the store without one (a new store, or one that lost its data).
-- KEYS[1] the identity (hash)
-- ARGV[1] a new id   ARGV[2] now   ARGV[3] the id this process knew before ('' for none)
-- Returns the identity's fields and values (HGETALL).
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('HSET', KEYS[1], 'id', ARGV[1], 'created', ARGV[2])
  if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], 'previous', ARGV[3], 'reset_at', ARGV[2]) end
end
return redis.call('HGETALL', KEYS[1])
