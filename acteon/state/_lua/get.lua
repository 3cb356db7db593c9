-- KEYS: hash, legacy string.  -> value or nil
local v = redis.call('HGET', KEYS[1], 'v')
if v then
  return v
end
return legacy_value(KEYS[2])
