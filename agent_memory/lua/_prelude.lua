-- Shared by every script (prepended by scripts.py).
-- KEYS[1..4] are one conversation's keys (stream, meta, ids, tokens), KEYS[5] the global index.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function touch_index(key, member, now, ttl)
  redis.call('ZADD', key, now, member)
  if redis.call('PTTL', key) < ttl then
    redis.call('PEXPIRE', key, ttl)
  end
end

-- Sliding expiry of all the conversation's keys, and its activity in every index it is in.
local function touch_conversation(conv_id, now, ttl)
  for i = 1, 4 do
    redis.call('PEXPIRE', KEYS[i], ttl)
  end
  touch_index(KEYS[5], conv_id, now, ttl)
  local extra = redis.call('HMGET', KEYS[2], 'index_user', 'index_agent')
  for _, key in ipairs(extra) do
    if key then
      touch_index(key, conv_id, now, ttl)
    end
  end
end
