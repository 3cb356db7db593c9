-- Read a slice of a lexicographic index (newest first) with the records it points to.
-- KEYS: records hash, candidate index zsets... (the smallest one is used)
-- ARGV: max bound, min bound, offset, count, '1' to also count the range
-- -> {position of the index used among the candidates (1-based), count or -1,
--     member, record JSON (nil when deleted meanwhile), ...}
local best, best_n = 2, -1
if #KEYS > 2 then
  for i = 2, #KEYS do
    local n = redis.call('ZCARD', KEYS[i])
    if best_n < 0 or n < best_n then
      best, best_n = i, n
    end
  end
end
local index = KEYS[best]
local total = -1
if ARGV[5] == '1' then
  total = redis.call('ZLEXCOUNT', index, ARGV[2], ARGV[1])
end
local out = {best - 1, total}
local members = redis.call('ZREVRANGEBYLEX', index, ARGV[1], ARGV[2], 'LIMIT', ARGV[3], ARGV[4])
if #members == 0 then
  return out
end
local ids = {}
for i, m in ipairs(members) do
  ids[i] = string.sub(m, string.find(m, ':', 1, true) + 1)
end
local docs = redis.call('HMGET', KEYS[1], unpack(ids))
for i, m in ipairs(members) do
  out[#out + 1] = m
  out[#out + 1] = docs[i]
end
return out
