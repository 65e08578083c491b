-- Store one LangGraph checkpoint: its record, its new channel values and, for the messages
-- channel of the root namespace, a reference to the thread's stream, to which the messages
-- not stored yet are appended (the entry format of append.lua).
-- ARGV: 1 ttl_ms, 2 thread id, 3 checkpoint (ns NUL id), 4 its head (see parse_head), 5 run
-- id or '', 6 n, then n (field, value) pairs; then the messages
-- field ('' = none), its base reference ('' = none) and (message id or '', payload) pairs; or,
-- for a messages value stored in full among the pairs, '' and '+' then (message id, payload)
-- pairs of its messages to append to the stream if their id is not there.
-- A reference is "count from to from to ...": the count, then inclusive cursor ranges.
-- Returns {1, reference or ''}, or {0, i} storing nothing when the i-th message's id is in
-- the stream with other content (the caller stores that value in full instead).
local ttl = tonumber(ARGV[1])
local conv_id = ARGV[2]
local member = ARGV[3]
local run = ARGV[5]
local n = tonumber(ARGV[6])
local msg_at = 7 + 2 * n
local msg_field = ARGV[msg_at] or ''
local now = now_ms()
local added = 0
local ref = ''
local wrote_ids, wrote_writes = false, false -- besides the stream (added > 0): see the end

-- Every message whose id is stored already must be stored with the same payload. ``fresh``:
-- id -> {cursor, payload} of the entries this script compared or appended (message_cursors).
local known = {}
local fresh = {}
if msg_field ~= '' then
  for i = msg_at + 2, #ARGV, 2 do
    local mid = ARGV[i]
    if mid ~= '' and not known[mid] then
      local cursor = redis.call('HGET', KEYS[3], mid)
      if cursor then
        if entry_payload(cursor) ~= ARGV[i + 1] then
          return {0, (i - msg_at) / 2}
        end
        known[mid] = cursor
        fresh[mid] = {cursor, ARGV[i + 1]}
      end
    end
  end
end
-- The data hash's fields this put writes, in one HSET at the end: the head, the values, the
-- messages reference.
local fields = {'c' .. SEP .. member, ARGV[4]}
for i = 7, 6 + 2 * n do
  fields[#fields + 1] = ARGV[i]
end

-- The entry right after ``cursor`` in the stream, or false.
local function next_cursor(cursor)
  local entry = redis.call('XRANGE', KEYS[1], '(' .. cursor, '+', 'COUNT', '1')[1]
  return entry and entry[1]
end

if msg_field ~= '' then
  local ranges = {}
  local count = false
  local base = ARGV[msg_at + 1]
  if base ~= '' then
    for token in string.gmatch(base, '%S+') do
      if count then
        ranges[#ranges + 1] = token
      else
        count = tonumber(token)
      end
    end
  end
  local last -- the stream's last entry before this put's first append: read then, if needed
  for i = msg_at + 2, #ARGV, 2 do
    local mid = ARGV[i]
    local cursor = mid ~= '' and known[mid]
    local follows
    if cursor then
      follows = #ranges > 0 and next_cursor(ranges[#ranges]) == cursor
    else
      if last == nil then
        local entry = #ranges > 0 and redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', '1')[1]
        last = entry and entry[1] or false
      end
      cursor = redis.call('XADD', KEYS[1], '*', 'm', ARGV[i + 1])
      if mid ~= '' then
        redis.call('HSET', KEYS[3], mid, cursor)
        wrote_ids = true
        known[mid] = cursor
        fresh[mid] = {cursor, ARGV[i + 1]}
      end
      follows = #ranges > 0 and ranges[#ranges] == last
      last = cursor
      added = added + 1
    end
    if follows then
      ranges[#ranges] = cursor
    else
      ranges[#ranges + 1] = cursor
      ranges[#ranges + 1] = cursor
    end
    count = (count or 0) + 1
  end
  ref = decimal(count or 0) .. (#ranges > 0 and ' ' .. table.concat(ranges, ' ') or '')
  fields[#fields + 1] = msg_field
  fields[#fields + 1] = MESSAGES .. ref
end

-- A messages value stored in full (field '', then '+'): its messages whose id the stream does
-- not hold yet are appended, so the conversation still shows what the graph added.
if msg_field == '' and ARGV[msg_at + 1] == '+' then
  for i = msg_at + 2, #ARGV, 2 do
    if redis.call('HEXISTS', KEYS[3], ARGV[i]) == 0 then
      local cursor = redis.call('XADD', KEYS[1], '*', 'm', ARGV[i + 1])
      redis.call('HSET', KEYS[3], ARGV[i], cursor)
      wrote_ids = true
      fresh[ARGV[i]] = {cursor, ARGV[i + 1]}
      added = added + 1
    end
  end
end

-- The parent's pending writes of messages not yet in the stream when they were written
-- (checkpoint_writes.lua left their spec in the data hash): those whose messages are now all
-- there with the same payloads become references to them; the spec goes.
local _, parent = parse_head(ARGV[4])
if parent ~= '' then
  local field = 'p' .. SEP .. ns_of(member) .. SEP .. parent .. SEP
  local spec = redis.call('HGET', KEYS[6], field)
  if spec then
    local items, at = {}, 1
    while at <= #spec do
      local colon = string.find(spec, ':', at, true)
      local len = tonumber(string.sub(spec, at, colon - 1))
      items[#items + 1] = string.sub(spec, colon + 1, colon + len)
      at = colon + len + 1
    end
    local prefix = string.sub(field, 3)
    local j = 1
    while j <= #items do
      local head, k = prefix .. items[j] .. SEP, tonumber(items[j + 2])
      local cursors = message_cursors(items, j + 3, k, items[j + 1], fresh)
      local old = cursors and redis.call('ZRANGEBYLEX', KEYS[7], '[' .. head, '[' .. head .. '\255',
        'LIMIT', '0', '1')[1]
      if old then
        redis.call('ZREM', KEYS[7], old) -- the zset's last member: ZADD creates it again
        wrote_writes = true
        redis.call('ZADD', KEYS[7], '0', head .. string.match(old, '^([^%z]*)', #head + 1) .. SEP ..
          'am.ref' .. SEP .. cursors)
      end
      j = j + 3 + 2 * k
    end
    redis.call('HDEL', KEYS[6], field)
  end
end

redis.call('ZADD', KEYS[5], '0', member)
hset_pairs(KEYS[6], fields)
if run ~= '' then
  redis.call('ZADD', KEYS[8], '0', run .. SEP .. member)
end
-- Sliding expiry (refresh_skippable): this put wrote into the checkpoints, the data hash, the
-- runs when it has one, the stream and the id map when it appended, the writes when it made
-- one a reference.
local written = written_keys(KEYS[5], true, KEYS[6], true, KEYS[8], run ~= '',
  KEYS[1], added > 0, KEYS[3], wrote_ids, KEYS[7], wrote_writes)
local meta = read_meta()
local at, named = thread_fresh(conv_id, now, ttl, meta, written)
ensure_meta(conv_id, now, added, meta, not at and now + ttl)
if not at then
  at = touch_thread(conv_id, now, ttl, named)
end
if run ~= '' and KEYS[10] then
  -- the run index expires no earlier than the thread's keys (E, or the new expiry)
  redis.call('ZADD', KEYS[10], '0', run .. SEP .. conv_id)
  if redis.call('PEXPIRETIME', KEYS[10]) < at then
    redis.call('PEXPIREAT', KEYS[10], decimal(at))
  end
end
return thread_reply({1, ref}, now, named)
