-- KEYS: lock, hash, legacy string.  ARGV: owner, lock_ttl_ms, delta, expires_at_ms.
-- -> {0, 0} lock busy | {1, count}; on a counter error the lock is released again.
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return {0, 0}
end
local n, err = increment_window(KEYS[2], KEYS[3], ARGV[3], ARGV[4])
if err then
  redis.call('DEL', KEYS[1])
  return err
end
return {1, n}
