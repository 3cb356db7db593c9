-- Insert one audit record and its index entries, atomically.
-- KEYS: records hash, sequence hash, expiry zset, index zsets (lex, score 0)...
-- ARGV: id, record JSON, index member ("{ms:013d}:{id}"), sequence field ('' = none),
--       expires_at_ms ('' = never)
-- -> 1, or an error reply "UNIQUE ..." for a duplicate id or (namespace, tenant, sequence).
local id = ARGV[1]
if redis.call('HEXISTS', KEYS[1], id) == 1 then
  return redis.error_reply('UNIQUE duplicate id ' .. id)
end
if ARGV[4] ~= '' and redis.call('HSETNX', KEYS[2], ARGV[4], id) == 0 then
  return redis.error_reply('UNIQUE duplicate sequence_number (namespace, tenant, sequence) = ' .. ARGV[4])
end
redis.call('HSET', KEYS[1], id, ARGV[2])
if ARGV[5] ~= '' then
  redis.call('ZADD', KEYS[3], ARGV[5], id)
end
for i = 4, #KEYS do
  redis.call('ZADD', KEYS[i], 0, ARGV[3])
end
return 1
