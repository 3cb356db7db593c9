-- KEYS: hash, legacy string.  ARGV: value, ttl_ms (-1 = permanent).  -> new version
local h, s = KEYS[1], KEYS[2]
local ttl = tonumber(ARGV[2])
local ver
if redis.call('EXISTS', h) == 1 then
  ver = redis.call('HINCRBY', h, 'ver', 1)
  redis.call('HSET', h, 'v', ARGV[1])
else
  ver = 1
  if is_legacy(s) then
    ver = 2
    redis.call('DEL', s)
  end
  redis.call('HSET', h, 'v', ARGV[1], 'ver', ver)
end
if ttl < 0 then
  redis.call('PERSIST', h)
else
  apply_ttl(h, ttl)
end
return ver
