-- Append messages atomically and idempotently.
-- ARGV: ttl_ms, conversation id, call token ('' = none: see KEYS[4] below), then (message id or
-- '', payload) pairs.
-- Returns a flat list: cursor, payload-or-'' per message ('' = added by this call; a payload
-- = already stored, returned as stored). A token seen before (with the same fingerprint)
-- replays that call's answer; the same token with another fingerprint returns {'reused'} and
-- stores nothing. Cluster mode (no KEYS[5]) adds index_info at the end of the list, replays
-- included.
local ttl = tonumber(ARGV[1])
local conv_id = ARGV[2]

local function stored(cursor)
  local entry = redis.call('XRANGE', KEYS[1], cursor, cursor)[1]
  if not entry then
    return ''
  end
  return entry[2][2]
end

-- KEYS[4] (hash) remembers each call's token for `keep` ms (not for a count of calls): field
-- <token> = '<expire_ms> <fingerprint> <cursor,cursor,...>'; fields '#<n>' = '<expire_ms>
-- <token>' queue the tokens in the order written (n from head to tail - 1, both in field '.'
-- with the head entry's expiry), so a write prunes the oldest expired ones in O(1). The key
-- itself expires with the conversation.
-- ARGV[3]: '<token> <fingerprint of the messages, or -> <keep_ms>' (a token is hex).
local token, fingerprint, keep = string.match(ARGV[3], '^(%x+) (%S+) (%d+)$')
local now = now_ms()
if token then
  local seen = redis.pcall('HGET', KEYS[4], token)
  if type(seen) == 'table' then -- the key of an older version (a list of recent tokens)
    redis.call('DEL', KEYS[4])
    seen = false
  end
  local expire, known_fp, known_cursors
  if seen then
    expire, known_fp, known_cursors = string.match(seen, '^(%d+) (%S+) (.*)$')
  end
  if expire and tonumber(expire) > now then
    if known_fp ~= fingerprint then
      return {'reused'}
    end
    local out = {}
    for cursor in string.gmatch(known_cursors, '[^,]+') do
      out[#out + 1] = cursor
      out[#out + 1] = stored(cursor)
    end
    return with_index_info(out, now)
  end
end

-- One read of the metadata hash: does it exist, its count, the indexes it is in, its last
-- refresh of the expiry (see the end).
local meta = redis.call('HMGET', KEYS[2], 'id', 'message_count', 'index_user', 'index_agent',
  'index_pair', 'refreshed')
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
if token then
  -- field '.' = '<head> <tail> <expiry of the head entry>': the queue's state in one read
  local head, tail, head_at = string.match(redis.call('HGET', KEYS[4], '.') or '0 0 0',
    '^(%d+) (%d+) (%d+)$')
  head, tail, head_at = tonumber(head), tonumber(tail), tonumber(head_at)
  local expire = now + tonumber(keep)
  local expire_arg = decimal(expire)
  local n = tail
  if head == n then -- the queue was empty: the new entry is its head
    head_at = expire
  end
  -- forget the oldest tokens that have expired, at most 2 a call (each call adds 1)
  local pruned = 0
  while pruned < 2 and head < n and head_at <= now do
    local field = '#' .. decimal(head)
    local at, old = string.match(redis.call('HGET', KEYS[4], field) or '', '^(%d+) (%x+)$')
    redis.call('HDEL', KEYS[4], field)
    -- the token itself, unless a later call took it again (after it expired)
    if at and string.sub(redis.call('HGET', KEYS[4], old) or '', 1, #at + 1) == at .. ' ' then
      redis.call('HDEL', KEYS[4], old)
    end
    head, pruned = head + 1, pruned + 1
    if head == n then
      head_at = expire
    else
      head_at = tonumber(string.match(redis.call('HGET', KEYS[4], '#' .. decimal(head)) or '0',
        '^%d+')) or 0
    end
  end
  local answer = expire_arg .. ' ' .. fingerprint .. ' ' .. table.concat(cursors, ',')
  redis.call('HSET', KEYS[4], token, answer, '#' .. decimal(n), expire_arg .. ' ' .. token, '.',
    decimal(head) .. ' ' .. decimal(n + 1) .. ' ' .. decimal(head_at))
end
-- Sliding expiry (refresh_skippable): the keys this call wrote into are the stream when it
-- added a message, the id map when it recorded an id, the tokens hash when it has a token.
local written = written_keys(KEYS[1], added > 0, KEYS[3], #new_ids > 0, KEYS[4], token ~= nil)
local indexes = KEYS[5] and {KEYS[5], named[1], named[2], named[3]}
if not refresh_skippable(meta[6], now, ttl, conv_id, written, indexes) then
  touch_conversation(conv_id, now, ttl, named)
  redis.call('HSET', KEYS[2], 'refreshed', decimal(now + ttl))
end
return with_index_info(out, now, named)
