-- Append messages atomically and idempotently.
-- ARGV: ttl_ms, conversation id, token ('' = none), then (message id or '', payload) pairs.
-- Returns a flat list: cursor, payload-or-'' per message ('' = added by this call; a payload
-- = already stored, returned as stored). A token seen before replays that call's answer.
-- Cluster mode (no KEYS[5]) adds index_info at the end of the list, replays included.
local ttl = tonumber(ARGV[1])
local conv_id = ARGV[2]
local token = ARGV[3]

local function stored(cursor)
  local entry = redis.call('XRANGE', KEYS[1], cursor, cursor)[1]
  if not entry then
    return ''
  end
  return entry[2][2]
end

-- KEYS[4] holds (token, 'cursor,cursor,...') pairs, newest first: the token is found by LPOS
-- in C (a token is hex, a cursor list never is), not by scanning the list in Lua.
if token ~= '' then
  local at = redis.call('LPOS', KEYS[4], token)
  if at then
    local out = {}
    for cursor in string.gmatch(redis.call('LINDEX', KEYS[4], at + 1) or '', '[^,]+') do
      out[#out + 1] = cursor
      out[#out + 1] = stored(cursor)
    end
    return with_index_info(out, now_ms())
  end
end

local now = now_ms()
if redis.call('EXISTS', KEYS[2]) == 0 then
  redis.call('HSET', KEYS[2], 'id', conv_id, 'created_at', now, 'message_count', 0, 'version', 1)
end

local out = {}
local cursors = {}
local added = 0
for i = 4, #ARGV, 2 do
  local mid = ARGV[i]
  local cursor = false
  if mid ~= '' then
    cursor = redis.call('HGET', KEYS[3], mid)
  end
  if cursor then
    out[#out + 1] = cursor
    out[#out + 1] = stored(cursor)
  else
    cursor = redis.call('XADD', KEYS[1], '*', 'm', ARGV[i + 1])
    if mid ~= '' then
      redis.call('HSET', KEYS[3], mid, cursor)
    end
    added = added + 1
    out[#out + 1] = cursor
    out[#out + 1] = ''
  end
  cursors[#cursors + 1] = cursor
end

redis.call('HINCRBY', KEYS[2], 'message_count', added)
redis.call('HSET', KEYS[2], 'updated_at', now)
if token ~= '' then
  redis.call('LPUSH', KEYS[4], table.concat(cursors, ','), token)
  redis.call('LTRIM', KEYS[4], 0, 31)
end
touch_conversation(conv_id, now, ttl)
return with_index_info(out, now)
