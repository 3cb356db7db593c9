-- One SCAN page plus the values of the matching entries.
-- ARGV: cursor, pattern, count, lock key prefix (strings under it are locks, not entries).
-- -> {next cursor, key, form ('h' hash / 's' legacy string), value, ...}
local page = redis.call('SCAN', ARGV[1], 'MATCH', ARGV[2], 'COUNT', ARGV[3])
local out = {page[1]}
local lock_prefix = ARGV[4]
for _, key in ipairs(page[2]) do
  local t = redis.call('TYPE', key)['ok']
  if t == 'hash' then
    local v = redis.call('HGET', key, 'v')
    if v then
      out[#out + 1] = key
      out[#out + 1] = 'h'
      out[#out + 1] = v
    end
  elseif t == 'string' and string.sub(key, 1, #lock_prefix) ~= lock_prefix then
    local v = redis.call('GET', key)
    if v then
      out[#out + 1] = key
      out[#out + 1] = 's'
      out[#out + 1] = v
    end
  end
end
return out
