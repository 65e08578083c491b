-- The LangGraph store's items (agent_memory.langgraph.RedisStore): one script, the command
-- in ARGV[1]. Every key of the store shares one hash tag (one hash slot).
-- KEYS[1] namespaces   zset  encoded namespace N, score 0 (ZRANGEBYLEX finds a prefix)
-- KEYS[2] order        hash  N -> sequence number of the namespace's creation
-- KEYS[3] expiry       zset  N -> expiry (ms) of the namespace's last item
-- KEYS[4] sequence     string, the counter behind both orders
-- ARGV[2] the key base: namespace N's items are base..'h:'..N (hash key -> record), their
-- expiries base..'e:'..N (zset key -> ms) and embeddings base..'v:'..N (hash key -> JSON).
-- A record is "<created ms> <seq> <updated ms> <ttl ms>\n<value JSON>".
-- Every key gets the expiry of the last item it serves; writes prune what has expired.
-- (After the shared prelude: now_ms and decimal come from there.)

local base = ARGV[2]

local function keys_of(ns)
  return base .. 'h:' .. ns, base .. 'e:' .. ns, base .. 'v:' .. ns
end

-- HMGET of any number of fields (unpack() takes a few thousand at most).
local function hmget(key, fields)
  local out = {}
  for first = 1, #fields, 1000 do
    local part = redis.call('HMGET', key, unpack(fields, first, math.min(first + 999, #fields)))
    for i = 1, #part do
      out[#out + 1] = part[i]
    end
  end
  return out
end

local function live(ns, now)
  local at = redis.call('ZSCORE', KEYS[3], ns)
  return at and tonumber(at) > now
end

-- Items of ``ns`` whose expiry has passed are removed.
local function prune(ns, now)
  local h, e, v = keys_of(ns)
  local dead = redis.call('ZRANGEBYSCORE', e, '-inf', decimal(now), 'LIMIT', 0, 1000)
  for _, key in ipairs(dead) do
    redis.call('HDEL', h, key)
    redis.call('HDEL', v, key)
    redis.call('ZREM', e, key)
  end
end

-- After a write to ``ns``: its keys expire with its last item (or go, with no item left), the
-- store's keys with its last namespace; namespaces that expired meanwhile are forgotten.
local function settle(ns, now)
  local h, e, v = keys_of(ns)
  local top = redis.call('ZRANGE', e, -1, -1, 'WITHSCORES')
  if #top == 0 then
    redis.call('DEL', h, e, v)
    redis.call('ZREM', KEYS[1], ns)
    redis.call('HDEL', KEYS[2], ns)
    redis.call('ZREM', KEYS[3], ns)
  else
    local at = decimal(tonumber(top[2]))
    redis.call('ZADD', KEYS[3], at, ns)
    for _, key in ipairs({h, e, v}) do
      redis.call('PEXPIREAT', key, at)
    end
  end
  local gone = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', decimal(now), 'LIMIT', 0, 100)
  for _, old in ipairs(gone) do
    redis.call('ZREM', KEYS[1], old)
    redis.call('HDEL', KEYS[2], old)
    redis.call('ZREM', KEYS[3], old)
  end
  local last = redis.call('ZRANGE', KEYS[3], -1, -1, 'WITHSCORES')
  for i = 1, 4 do
    if #last == 0 then
      redis.call('DEL', KEYS[i])
    else
      redis.call('PEXPIREAT', KEYS[i], decimal(tonumber(last[2])))
    end
  end
end

-- Sliding expiry of one live item (and of every key that serves it).
local function touch(ns, key, record, now)
  local h, e, v = keys_of(ns)
  local at = decimal(now + tonumber(string.match(record, '^%d+ %d+ %d+ (%d+)')))
  redis.call('ZADD', e, 'GT', at, key)
  redis.call('ZADD', KEYS[3], 'GT', at, ns)
  for _, k in ipairs({h, e, v, KEYS[1], KEYS[2], KEYS[3], KEYS[4]}) do
    redis.call('PEXPIREAT', k, at, 'GT')
  end
end

local function put(ns, key, value, ttl, vectors)
  local now = now_ms()
  local h, e, v = keys_of(ns)
  prune(ns, now)
  local created, seq = now, nil
  if value == '' then
    redis.call('HDEL', h, key)
    redis.call('HDEL', v, key)
    redis.call('ZREM', e, key)
  else
    local old = redis.call('HGET', h, key)
    if old then
      created, seq = string.match(old, '^(%d+) (%d+) ')
    else
      if redis.call('EXISTS', h) == 0 then  -- a new namespace (or one whose items all expired)
        redis.call('ZADD', KEYS[1], 0, ns)
        redis.call('HSET', KEYS[2], ns, redis.call('INCR', KEYS[4]))
      end
      seq = redis.call('INCR', KEYS[4])
      created = decimal(now)
    end
    redis.call('HSET', h, key, created .. ' ' .. seq .. ' ' .. decimal(now) .. ' ' .. ttl .. '\n' .. value)
    if vectors ~= '' then
      redis.call('HSET', v, key, vectors)
    else
      redis.call('HDEL', v, key)
    end
    redis.call('ZADD', e, decimal(now + tonumber(ttl)), key)
  end
  settle(ns, now)
  return 1
end

local function get(ns, key, refresh)
  local now = now_ms()
  local h, e = keys_of(ns)
  local at = redis.call('ZSCORE', e, key)
  if not at or tonumber(at) <= now then
    return false
  end
  local record = redis.call('HGET', h, key)
  if record and refresh == '1' then
    touch(ns, key, record, now)
  end
  return record
end

-- Namespaces equal to ``prefix`` or under it ('' for all), without expired ones.
local function namespaces(prefix, now)
  local found
  if prefix == '' then
    found = redis.call('ZRANGE', KEYS[1], 0, -1)
  else
    found = redis.call('ZRANGEBYLEX', KEYS[1], '[' .. prefix, '[' .. prefix)
    local under = redis.call('ZRANGEBYLEX', KEYS[1], '[' .. prefix .. ':', '(' .. prefix .. ';')
    for _, ns in ipairs(under) do
      found[#found + 1] = ns
    end
  end
  local out = {}
  for _, ns in ipairs(found) do
    if live(ns, now) then
      out[#out + 1] = ns
    end
  end
  return out
end

-- {0, N, order, keys, records, embeddings, N, ...} for every live item under the prefix, or
-- {1, count} when there are more than ``bound`` of them (nothing is read then).
local function search(prefix, with_vectors, bound)
  local now = now_ms()
  local names = namespaces(prefix, now)
  local count = 0
  for _, ns in ipairs(names) do
    local _, e = keys_of(ns)
    count = count + redis.call('ZCOUNT', e, '(' .. decimal(now), '+inf')
    if count > bound then
      return {1, count}
    end
  end
  local out = {0}
  for _, ns in ipairs(names) do
    local h, e, v = keys_of(ns)
    local keys = redis.call('ZRANGEBYSCORE', e, '(' .. decimal(now), '+inf')
    if #keys > 0 then
      out[#out + 1] = ns
      out[#out + 1] = redis.call('HGET', KEYS[2], ns)
      out[#out + 1] = keys
      out[#out + 1] = hmget(h, keys)
      out[#out + 1] = with_vectors == '1' and hmget(v, keys) or {}
    end
  end
  return out
end

local function list(prefix, bound)
  if prefix == '' and redis.call('ZCARD', KEYS[1]) > bound then
    return {1}
  end
  local names = namespaces(prefix, now_ms())
  if #names > bound then
    return {1}
  end
  table.insert(names, 1, 0)
  return names
end

local function refresh(ns, first)
  local now = now_ms()
  local h, e = keys_of(ns)
  for i = first, #ARGV do
    local at = redis.call('ZSCORE', e, ARGV[i])
    if at and tonumber(at) > now then
      touch(ns, ARGV[i], redis.call('HGET', h, ARGV[i]), now)
    end
  end
  return 1
end

-- Export: {order, keys, records, embeddings, expiries} of the live items of ``ns``.
local function dump(ns)
  local now = now_ms()
  local h, e, v = keys_of(ns)
  local found = redis.call('ZRANGEBYSCORE', e, '(' .. decimal(now), '+inf', 'WITHSCORES')
  local keys, expiries = {}, {}
  for i = 1, #found, 2 do
    keys[#keys + 1] = found[i]
    expiries[#expiries + 1] = found[i + 1]
  end
  if #keys == 0 then
    return {false, {}, {}, {}, {}}
  end
  return {redis.call('HGET', KEYS[2], ns), keys, hmget(h, keys),
    hmget(v, keys), expiries}
end

-- Import: an item absent from the store gets its exported times and absolute expiry; one that
-- exists is left alone (0), one whose expiry has passed is skipped (-1); 1 when restored.
local function restore(ns, key, created, updated, ttl, expires_at, value, vectors)
  local now = now_ms()
  if tonumber(expires_at) <= now then
    return -1
  end
  local h, e, v = keys_of(ns)
  prune(ns, now)
  if redis.call('HEXISTS', h, key) == 1 then
    return 0
  end
  if redis.call('EXISTS', h) == 0 then
    redis.call('ZADD', KEYS[1], 0, ns)
    redis.call('HSET', KEYS[2], ns, redis.call('INCR', KEYS[4]))
  end
  local seq = redis.call('INCR', KEYS[4])
  redis.call('HSET', h, key, created .. ' ' .. seq .. ' ' .. updated .. ' ' .. ttl .. '\n' .. value)
  if vectors ~= '' then
    redis.call('HSET', v, key, vectors)
  end
  redis.call('ZADD', e, expires_at, key)
  settle(ns, now)
  return 1
end

local cmd = ARGV[1]
if cmd == 'put' then
  return put(ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7])
elseif cmd == 'get' then
  return get(ARGV[3], ARGV[4], ARGV[5])
elseif cmd == 'search' then
  return search(ARGV[3], ARGV[4], tonumber(ARGV[5]))
elseif cmd == 'list' then
  return list(ARGV[3], tonumber(ARGV[4]))
elseif cmd == 'dump' then
  return dump(ARGV[3])
elseif cmd == 'restore' then
  return restore(ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9], ARGV[10])
elseif cmd == 'refresh' then
  return refresh(ARGV[3], 4)
end
return redis.error_reply('items.lua: unknown command ' .. tostring(cmd))
