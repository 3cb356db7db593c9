-- KEYS: hash, legacy string.  ARGV: expected version, new value, ttl_ms (-1 = keep).
-- -> {1, new version} | {0, current version, current value} | {0, 0} when absent
local h, s = KEYS[1], KEYS[2]
local expected = tonumber(ARGV[1])
local ttl = tonumber(ARGV[3])
local r = redis.call('HMGET', h, 'v', 'ver')
if not r[1] then
  if not is_legacy(s) then
    return {0, 0}
  end
  local v = redis.call('GET', s)
  if expected ~= 1 then
    return {0, 1, v}
  end
  promote(h, s)
  r = {v, '1'}
end
local ver = tonumber(r[2]) or 1
if ver ~= expected then
  return {0, ver, r[1]}
end
redis.call('HSET', h, 'v', ARGV[2], 'ver', ver + 1)
apply_ttl(h, ttl)
return {1, ver + 1}
