-- KEYS: hash, legacy string.  ARGV: value, ttl_ms.  -> 1 created / 0 exists
return check_and_set(KEYS[1], KEYS[2], ARGV[1], tonumber(ARGV[2]))
