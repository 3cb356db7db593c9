-- KEYS: hash, legacy string.  -> 1 if a live entry was removed
local n = redis.call('DEL', KEYS[1])
if is_legacy(KEYS[2]) then
  n = n + redis.call('DEL', KEYS[2])
end
if n > 0 then
  return 1
end
return 0
