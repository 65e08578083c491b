-- Shared by every script (prepended by scripts.py).
-- KEYS[1..4] are one conversation's keys (stream, meta, ids, tokens), KEYS[5] the global index,
-- KEYS[6] the TTL marker (see prune_cutoff).
-- Cluster mode passes KEYS[1..4] only (the indexes live in other hash slots): the scripts then
-- leave the indexes alone and return what the caller needs to update them itself.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- A whole number as the decimal string a command takes: redis.call would format a Lua number
-- as a float (printf "%.17g"), a measurable part of a short script's time.
local function decimal(n)
  return string.format('%d', n)
end

-- ``key`` expires at ``expire_at`` (ms) or later (a longer TTL written before is kept). One
-- command in the usual case (the expiry moves forward: GT sets it); GT leaves a key without a
-- TTL alone (it counts as infinite), so a refusal checks for that case.
local function expire_not_before(key, expire_at, expire_arg)
  if redis.call('PEXPIREAT', key, expire_arg, 'GT') == 0 and redis.call('PEXPIRETIME', key) == -1 then
    redis.call('PEXPIREAT', key, expire_arg)
  end
end

-- An index expires when its last conversation does: never before ``expire_at`` (ms). Entries
-- scored below ``cutoff`` (exclusive bound '(ms') have certainly expired: they are removed
-- here, on every write, so pruning does not wait for someone to list (O(log n + removed)).
local function touch_index(key, member, now_arg, expire_at, expire_arg, cutoff)
  redis.call('ZADD', key, now_arg, member)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', cutoff)
  expire_not_before(key, expire_at, expire_arg)
end

-- ``marker`` (P:x:ttl; KEYS[6] of the conversation scripts, single server) holds the longest TTL
-- any write to this prefix's indexes used, as the score of its one member 'ttl': raised to
-- ``ttl_ms`` here, kept until ``expire_at`` at least. An index entry (score = last activity)
-- older than now minus it has expired, whatever the TTL of the store that wrote it. Returns the
-- exclusive cutoff for touch_index.
local function prune_cutoff(marker, now, ttl_ms, expire_at, expire_arg)
  -- one read in the usual case (the marker already holds this TTL or a longer one)
  local longest = tonumber(redis.call('ZSCORE', marker, 'ttl'))
  if not longest or longest < ttl_ms then
    redis.call('ZADD', marker, decimal(ttl_ms), 'ttl')
    longest = ttl_ms
  end
  expire_not_before(marker, expire_at, expire_arg)
  return '(' .. decimal(now - longest)
end

-- The conversation's {user index, agent index, (user, agent) index} (false where none):
-- ``named`` when the caller has read them already (with other fields of the hash), else one
-- HMGET.
local function index_names(named)
  return named or redis.call('HMGET', KEYS[2], 'index_user', 'index_agent', 'index_pair')
end

-- The conversation's activity in the global index ``index`` and in every index it is named in,
-- each pruned of what has certainly expired (the cutoff comes from the TTL marker ``marker``).
-- Single server only: on a cluster the indexes live in other slots.
local function touch_indexes(index, marker, conv_id, now, ttl, named)
  local now_arg, expire_at = decimal(now), now + ttl
  local expire_arg = decimal(expire_at)
  local cutoff = prune_cutoff(marker, now, ttl, expire_at, expire_arg)
  touch_index(index, conv_id, now_arg, expire_at, expire_arg, cutoff)
  local extra = index_names(named)
  for i = 1, 3 do
    if extra[i] then
      touch_index(extra[i], conv_id, now_arg, expire_at, expire_arg, cutoff)
    end
  end
end

-- The keys of the conversation's LangGraph thread (checkpoints, data, writes, runs: keys.py),
-- named after its stream KEYS[1] (P:c:{E}:s), in the same hash slot. Not passed as KEYS, so a
-- conversation script keeps its signature; PEXPIREAT on one that does not exist does nothing.
local function thread_keys()
  local base = string.sub(KEYS[1], 1, -2)
  return {base .. 'k', base .. 'd', base .. 'w', base .. 'r'}
end

-- Sliding expiry of all the conversation's keys (its LangGraph thread's too: a write through
-- the library or REST keeps the checkpoints as long as the messages), and its activity in
-- every index it is in. One absolute expiry (now + ttl) for all of them: relative PEXPIREs
-- would each read the clock, which may tick between two of them.
local function touch_conversation(conv_id, now, ttl, named)
  local expire_arg = decimal(now + ttl)
  for i = 1, 4 do
    redis.call('PEXPIREAT', KEYS[i], expire_arg)
  end
  for _, key in ipairs(thread_keys()) do
    redis.call('PEXPIREAT', key, expire_arg)
  end
  if KEYS[5] then
    touch_indexes(KEYS[5], KEYS[6], conv_id, now, ttl, named)
  end
end

-- Sliding expiry with a tolerance, for every script that writes a conversation's keys and
-- then refreshes them all (append, the checkpoint scripts). Field 'refreshed' = '<E>' of the
-- metadata hash: the last full refresh by one of them (touch_conversation / touch_thread, then
-- 'refreshed' written) gave every key of the conversation and its thread the absolute expiry
-- E (ms). The refresh may be skipped, leaving every key at E, when all of these hold:
--   * E is at most SLACK short of now + ttl (SLACK = min(ttl / 100, 60 s)): after any write,
--     every key expires no earlier than now + ttl - SLACK, and no later than now + ttl;
--   * the hash and every key this call wrote into (``written``) still expire at E: a key
--     created by this call (a first id, the first pending write, a run; one that pop,
--     copy_thread, delete_for_runs, prune, a hand-made DEL or eviction removed since) has no
--     expiry yet, and any other writer (an update, a pop, touch_on_read, copy_thread, a
--     hand-made PEXPIRE) moves the hash's, so both force a refresh and no key is ever left
--     without a TTL;
--   * the conversation is already in each of its ``indexes`` (single server: the global one
--     and those named in the hash; ZADD of now adds no member), so the listings' activity
--     order stays exact and no index is created here without a TTL. Index pruning (and the
--     TTL marker) run with refreshes, at least once per SLACK of activity of any
--     conversation of the prefix.
-- Keys this call did not write keep whatever expiry they have: untouched, as after a skip.
-- ``refreshed``: the field as read (false if none). Returns E when the refresh may be
-- skipped, else false (the caller refreshes everything and writes 'refreshed' = now + ttl).
local function refresh_skippable(refreshed, now, ttl, conv_id, written, indexes)
  local at = tonumber(string.match(refreshed or '', '^(%d+)'))
  local target = now + ttl
  if not at or at > target or target - at > math.min(math.floor(ttl / 100), 60000) then
    return false
  end
  if redis.call('PEXPIRETIME', KEYS[2]) ~= at then
    return false
  end
  for _, key in ipairs(written) do
    if redis.call('PEXPIRETIME', key) ~= at then
      return false
    end
  end
  if indexes then
    local now_arg = decimal(now)
    for _, index in ipairs(indexes) do
      if index and redis.call('ZADD', index, now_arg, conv_id) == 1 then
        return false -- not in it: a new index, or one pruned by hand
      end
    end
  end
  return at
end

-- refresh_skippable's ``written``: the keys of the (key, wrote) pairs whose wrote is true.
local function written_keys(...)
  local args, out = {...}, {}
  for i = 1, select('#', ...), 2 do
    if args[i + 1] then
      out[#out + 1] = args[i]
    end
  end
  return out
end

-- Cluster mode: {time, user index, agent index, pair index ('' where none)} for the caller's
-- index update.
local function index_info(now, named)
  local extra = index_names(named)
  return {now, extra[1] or '', extra[2] or '', extra[3] or ''}
end

-- ``out`` followed by index_info(now) in cluster mode; ``out`` alone on a single server.
local function with_index_info(out, now, named)
  if KEYS[5] then
    return out
  end
  for _, value in ipairs(index_info(now, named)) do
    out[#out + 1] = value
  end
  return out
end
