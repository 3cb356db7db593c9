-- KEYS: lock, hash, legacy string.  ARGV: owner, lock_ttl_ms, value, ttl_ms.
-- -> {0, 0} lock busy | {1, created}
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return {0, 0}
end
return {1, check_and_set(KEYS[2], KEYS[3], ARGV[3], tonumber(ARGV[4]))}
