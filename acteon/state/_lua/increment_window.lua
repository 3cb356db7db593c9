-- KEYS: hash, legacy string.  ARGV: delta, expires_at_ms.  -> new value
local n, err = increment_window(KEYS[1], KEYS[2], ARGV[1], ARGV[2])
if err then
  return err
end
return n
