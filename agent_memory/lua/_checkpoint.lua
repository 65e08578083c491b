-- Shared by the LangGraph checkpoint scripts (prepended after _prelude.lua by scripts.py).
-- KEYS[1..8]: one thread's keys, all in its conversation's hash tag: stream, meta, ids, tokens
-- (the conversation's) and checkpoints, data, writes, runs (keys.py). On a single server
-- KEYS[9] is the conversation index, KEYS[10] the run index and KEYS[11] the TTL marker
-- (prune_cutoff in _prelude.lua); cluster mode passes none of them (other hash slots) and the
-- plan updates them itself.
-- Numbers go to redis.call as strings ('0', not 0): see decimal in _prelude.lua.
local SEP = '\0'
local MESSAGES = 'am.messages' .. SEP -- a messages value kept as a reference to the stream

-- A checkpoint's head, the data hash's field ``c NUL ns NUL id``: its value names (channel NUL
-- version, joined by \1), parent id and run id, each as "<length>:<bytes>", then its record.
-- Returns names, parent, run and where the record starts.
local function parse_head(value)
  local parts, at = {}, 1
  for i = 1, 3 do
    local colon = string.find(value, ':', at, true)
    local n = tonumber(string.sub(value, at, colon - 1))
    parts[i] = string.sub(value, colon + 1, colon + n)
    at = colon + n + 1
  end
  return parts[1], parts[2], parts[3], at
end

-- The namespace of a checkpoint member (ns NUL id).
local function ns_of(member)
  return string.match(member, '^[^%z]*')
end

-- The data hash fields of the values named in a head, in namespace ``ns``.
local function value_fields(ns, names)
  local fields = {}
  for name in string.gmatch(names, '[^\1]+') do
    fields[#fields + 1] = 'b' .. SEP .. ns .. SEP .. name
  end
  return fields
end

-- The stored payload of a stream entry (false if none).
local function entry_payload(cursor)
  local entry = redis.call('XRANGE', KEYS[1], cursor, cursor)[1]
  return entry and entry[2][2]
end

-- A pending write's messages as a reference: shape ('L' a list, 'M' one message) and the stream
-- cursors of the k (message id, payload) pairs in t from t[at], or false unless every id is in
-- the stream with that payload. ``fresh`` (optional): id -> {cursor, payload} of entries this
-- script stored or compared already, answered without reading the stream again.
local function message_cursors(t, at, k, shape, fresh)
  local cursors = {shape}
  for j = at, at + 2 * k - 1, 2 do
    local seen = fresh and fresh[t[j]]
    local cursor
    if seen then
      cursor = seen[2] == t[j + 1] and seen[1]
    else
      cursor = redis.call('HGET', KEYS[3], t[j])
      if cursor and entry_payload(cursor) ~= t[j + 1] then
        cursor = false
      end
    end
    if not cursor then
      return false
    end
    cursors[#cursors + 1] = cursor
  end
  return table.concat(cursors, ' ')
end

-- HSET of the (field, value) pairs in t, a thousand pairs per call (Lua's unpack limit).
local function hset_pairs(key, t)
  for i = 1, #t, 2000 do
    redis.call('HSET', key, unpack(t, i, math.min(i + 1999, #t)))
  end
end

-- Sliding expiry of all the thread's keys (one absolute time); on a single server also its
-- entries in the conversation indexes (``named``: the conversation's index names when read
-- already, see index_names). Returns the expiry (ms).
local function touch_thread(conv_id, now, ttl, named)
  local expire_at = now + ttl
  local expire_arg = decimal(expire_at)
  for i = 1, 8 do
    redis.call('PEXPIREAT', KEYS[i], expire_arg)
  end
  if KEYS[9] then
    touch_indexes(KEYS[9], KEYS[11], conv_id, now, ttl, named)
  end
  return expire_at
end

-- The metadata hash's fields a checkpoint write reads, in one HMGET: id, message_count, the
-- three index names (index_names), 'refreshed' (refresh_skippable).
local function read_meta()
  return redis.call('HMGET', KEYS[2], 'id', 'message_count', 'index_user', 'index_agent',
    'index_pair', 'refreshed')
end

-- Whether the sliding expiry after a write into the keys ``written`` (besides the metadata
-- hash) may be skipped: refresh_skippable's answer (E, or false: the caller then runs
-- touch_thread, once the hash exists, and writes 'refreshed' = now + ttl), and the
-- conversation's index names. ``meta``: read_meta's.
local function thread_fresh(conv_id, now, ttl, meta, written)
  local named = {meta[3], meta[4], meta[5]}
  local indexes = KEYS[9] and {KEYS[9], named[1], named[2], named[3]}
  return refresh_skippable(meta[6], now, ttl, conv_id, written, indexes), named
end

-- The conversation's metadata hash (``meta``: read_meta's): created if missing, else its
-- activity and count updated, in one HSET, with 'refreshed' = ``refreshed`` (ms) when given.
local function ensure_meta(conv_id, now, added, meta, refreshed)
  local now_arg = decimal(now)
  local fields
  if not meta[1] then
    fields = {'id', conv_id, 'created_at', now_arg, 'updated_at', now_arg,
      'message_count', decimal(added), 'version', '1'}
  elseif added > 0 then
    fields = {'updated_at', now_arg, 'message_count', decimal((tonumber(meta[2]) or 0) + added)}
  else
    fields = {'updated_at', now_arg}
  end
  if refreshed then
    fields[#fields + 1] = 'refreshed'
    fields[#fields + 1] = decimal(refreshed)
  end
  redis.call('HSET', KEYS[2], unpack(fields))
end

-- The reply's tail: nothing on a single server, index_info in cluster mode.
local function thread_reply(out, now, named)
  if KEYS[9] then
    return out
  end
  for _, value in ipairs(index_info(now, named)) do
    out[#out + 1] = value
  end
  return out
end
