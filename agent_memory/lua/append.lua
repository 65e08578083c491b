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
-- One read of the metadata hash: does it exist, its count, the indexes it is in.
local meta = redis.call('HMGET', KEYS[2], 'id', 'message_count', 'index_user', 'index_agent',
  'index_pair')
local named = {meta[3], meta[4], meta[5]}

-- The cursors of the given message ids already stored (one HMGET for the whole call); an id
-- given twice in one call is found too, as added by its first occurrence.
local known = {}
local mids = {}
for i = 4, #ARGV, 2 do
  if ARGV[i] ~= '' then
    mids[#mids + 1] = ARGV[i]
  end
end
for first = 1, #mids, 1000 do -- unpack() is bounded by Lua's C stack: at most 1000 at once
  local last = math.min(first + 999, #mids)
  local found = redis.call('HMGET', KEYS[3], unpack(mids, first, last))
  for j = first, last do
    if found[j - first + 1] then
      known[mids[j]] = found[j - first + 1]
    end
  end
end

local out = {}
local cursors = {}
local new_ids = {}
local added = 0
for i = 4, #ARGV, 2 do
  local mid = ARGV[i]
  local cursor = mid ~= '' and known[mid]
  if cursor then
    out[#out + 1] = cursor
    out[#out + 1] = stored(cursor)
  else
    cursor = redis.call('XADD', KEYS[1], '*', 'm', ARGV[i + 1])
    if mid ~= '' then
      known[mid] = cursor
      new_ids[#new_ids + 1] = mid
      new_ids[#new_ids + 1] = cursor
    end
    added = added + 1
    out[#out + 1] = cursor
    out[#out + 1] = ''
  end
  cursors[#cursors + 1] = cursor
end
for first = 1, #new_ids, 1000 do
  redis.call('HSET', KEYS[3], unpack(new_ids, first, math.min(first + 999, #new_ids)))
end

local now_arg = decimal(now)
if meta[1] or meta[2] then
  redis.call('HSET', KEYS[2], 'message_count', decimal((tonumber(meta[2]) or 0) + added),
    'updated_at', now_arg)
else
  redis.call('HSET', KEYS[2], 'id', conv_id, 'created_at', now_arg, 'updated_at', now_arg,
    'message_count', decimal(added), 'version', '1')
end
if token ~= '' then
  redis.call('LPUSH', KEYS[4], table.concat(cursors, ','), token)
  redis.call('LTRIM', KEYS[4], '0', '31') -- strings: see decimal()
end
touch_conversation(conv_id, now, ttl, named)
return with_index_info(out, now, named)
