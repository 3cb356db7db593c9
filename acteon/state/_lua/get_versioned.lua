-- KEYS: hash, legacy string.  -> {value, version} or nil
local r = redis.call('HMGET', KEYS[1], 'v', 'ver')
if r[1] then
  return {r[1], tonumber(r[2]) or 1}
end
local s = legacy_value(KEYS[2])
if s then
  return {s, 1}
end
return false
