-- KEYS: hash, legacy string.  ARGV: delta, ttl_ms (-1 = keep expiry).  -> new value
local h, s = KEYS[1], KEYS[2]
if redis.call('EXISTS', h) == 0 and is_legacy(s) then
  promote(h, s)
end
local n, err = add(h, ARGV[1])
if err then
  return err
end
apply_ttl(h, tonumber(ARGV[2]))
return n
