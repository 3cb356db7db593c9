-- Remove one audit record and its index entries.
-- KEYS: records hash, sequence hash, expiry zset, index zsets...
-- ARGV: id, index member, sequence field ('' = none)  -> 1 removed / 0 already gone
local id = ARGV[1]
redis.call('ZREM', KEYS[3], id)
if redis.call('HDEL', KEYS[1], id) == 0 then
  return 0
end
if ARGV[3] ~= '' and redis.call('HGET', KEYS[2], ARGV[3]) == id then
  redis.call('HDEL', KEYS[2], ARGV[3])
end
for i = 4, #KEYS do
  redis.call('ZREM', KEYS[i], ARGV[2])
end
return 1
