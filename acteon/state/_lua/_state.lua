-- Shared helpers for the state scripts; this text is prepended to each of them.
--
-- An entry lives in one hash  <prefix>:<canonical>:h  with fields v (value)
-- and ver (version). The Rust gateway also wrote check_and_set / increment
-- entries as a plain string at <prefix>:<canonical>; such a string is read as
-- version 1 and converted to the hash form by the first write that touches it.
-- TTL arguments are whole milliseconds: -1 = none / keep, 0 = already expired.

local function is_legacy(s)
  return redis.call('TYPE', s)['ok'] == 'string'
end

local function legacy_value(s)
  if is_legacy(s) then
    return redis.call('GET', s)
  end
  return false
end

-- Move a legacy string entry into the hash form (version 1, same expiry).
local function promote(h, s)
  local value = redis.call('GET', s)
  local pttl = redis.call('PTTL', s)
  redis.call('DEL', s)
  redis.call('HSET', h, 'v', value, 'ver', 1)
  if pttl > 0 then
    redis.call('PEXPIRE', h, pttl)
  end
end

-- -1 keeps the current expiry, 0 expires the entry now, > 0 sets it.
local function apply_ttl(h, ttl)
  if ttl > 0 then
    redis.call('PEXPIRE', h, ttl)
  elseif ttl == 0 then
    redis.call('DEL', h)
  end
end

local function check_and_set(h, s, value, ttl)
  if redis.call('EXISTS', h) == 1 or is_legacy(s) then
    return 0
  end
  if ttl == 0 then
    return 1
  end
  redis.call('HSET', h, 'v', value, 'ver', 1)
  if ttl > 0 then
    redis.call('PEXPIRE', h, ttl)
  end
  return 1
end

-- HINCRBY with the error turned into a NOTINT reply the client maps to a
-- serialization error; nothing has been written when it fails.
local function add(h, delta)
  local n = redis.pcall('HINCRBY', h, 'v', delta)
  if type(n) == 'table' and n['err'] then
    return nil, redis.error_reply('NOTINT counter value is not an integer (' .. n['err'] .. ')')
  end
  redis.call('HINCRBY', h, 'ver', 1)
  -- Lua numbers are doubles: hand back the exact decimal text for big counters.
  if n >= 9007199254740992 or n <= -9007199254740992 then
    return redis.call('HGET', h, 'v')
  end
  return n
end

-- Fixed-window counter: the absolute expiry is set only when the call creates it.
local function increment_window(h, s, delta, expires_at_ms)
  local created = redis.call('EXISTS', h) == 0
  if created and is_legacy(s) then
    promote(h, s)
    created = false
  end
  local n, err = add(h, delta)
  if err then
    return nil, err
  end
  if created then
    redis.call('PEXPIREAT', h, expires_at_ms)
  end
  return n
end
