-- Shared by every script (prepended by scripts.py).
-- KEYS[1..4] are one conversation's keys (stream, meta, ids, tokens), KEYS[5] the global index.
-- Cluster mode passes KEYS[1..4] only (the indexes live in other hash slots): the scripts then
-- leave the indexes alone and return what the caller needs to update them itself.
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
  if not KEYS[5] then
    return
  end
  touch_index(KEYS[5], conv_id, now, ttl)
  local extra = redis.call('HMGET', KEYS[2], 'index_user', 'index_agent')
  for _, key in ipairs(extra) do
    if key then
      touch_index(key, conv_id, now, ttl)
    end
  end
end

-- Cluster mode: {time, user index or '', agent index or ''} for the caller's index update.
local function index_info(now)
  local extra = redis.call('HMGET', KEYS[2], 'index_user', 'index_agent')
  return {now, extra[1] or '', extra[2] or ''}
end

-- ``out`` followed by index_info(now) in cluster mode; ``out`` alone on a single server.
local function with_index_info(out, now)
  if KEYS[5] then
    return out
  end
  for _, value in ipairs(index_info(now)) do
    out[#out + 1] = value
  end
  return out
end
