-- LangGraph thread maintenance, one thread per call. ARGV: 1 ttl_ms, 2 thread id, 3 op:
--   'prune'  ARGV[4] = 'keep_latest' (the newest checkpoint of each namespace stays) or
--            'delete' (every checkpoint goes; the conversation's messages stay)
--   'runs'   ARGV[4..] = run ids whose checkpoints (and their writes) go
--   'copied' after the plan RESTOREd another thread's keys here: metadata, expiry, indexes
-- Returns {number of checkpoints removed} ('copied': {run ids...}, plus index_info in
-- cluster mode).
local ttl = tonumber(ARGV[1])
local conv_id = ARGV[2]
local op = ARGV[3]

local function drop(member)
  local head = redis.call('HGET', KEYS[6], 'c' .. SEP .. member)
  if head then
    local _, _, run = parse_head(head)
    if run ~= '' then
      redis.call('ZREM', KEYS[8], run .. SEP .. member)
    end
  end
  -- its head, and the spec of message writes its child would have made references
  redis.call('HDEL', KEYS[6], 'c' .. SEP .. member, 'p' .. SEP .. member .. SEP)
  redis.call('ZREM', KEYS[5], member)
  redis.call('ZREMRANGEBYLEX', KEYS[7], '[' .. member .. SEP, '[' .. member .. SEP .. '\255')
end

-- Delete the values no remaining checkpoint names.
local function collect()
  local names = {}
  local values = {}
  local fields = redis.call('HKEYS', KEYS[6])
  for _, field in ipairs(fields) do
    local kind = string.sub(field, 1, 2)
    if kind == 'c' .. SEP then
      local value_names = parse_head(redis.call('HGET', KEYS[6], field))
      for _, name in ipairs(value_fields(ns_of(string.sub(field, 3)), value_names)) do
        names[name] = true
      end
    elseif kind == 'b' .. SEP then
      values[#values + 1] = field
    end
  end
  for _, field in ipairs(values) do
    if not names[field] then
      redis.call('HDEL', KEYS[6], field)
    end
  end
end

local removed = 0
if op == 'prune' then
  local members = redis.call('ZRANGE', KEYS[5], '0', '-1')
  for i, member in ipairs(members) do
    local ns = string.match(member, '^[^%z]*')
    local next_ns = members[i + 1] and string.match(members[i + 1], '^[^%z]*')
    if ARGV[4] == 'delete' or next_ns == ns then
      drop(member)
      removed = removed + 1
    end
  end
  if ARGV[4] == 'delete' then
    redis.call('DEL', KEYS[5], KEYS[6], KEYS[7], KEYS[8])
  else
    collect()
  end
  return {removed}
elseif op == 'runs' then
  for i = 4, #ARGV do
    local prefix = ARGV[i] .. SEP
    for _, entry in ipairs(redis.call('ZRANGEBYLEX', KEYS[8], '[' .. prefix, '[' .. prefix .. '\255')) do
      drop(string.sub(entry, #prefix + 1))
      removed = removed + 1
    end
  end
  if removed > 0 then
    collect()
  end
  return {removed}
end

-- 'copied'
local now = now_ms()
local meta = read_meta()
local named = {meta[3], meta[4], meta[5]}
-- a full refresh: the copied keys (RESTOREd with a relative TTL) get the thread's expiry too
ensure_meta(conv_id, now, 0, meta, now + ttl)
redis.call('HSET', KEYS[2], 'message_count', decimal(redis.call('XLEN', KEYS[1])))
local expire_at = touch_thread(conv_id, now, ttl, named)
local runs = {}
local seen = {}
for _, entry in ipairs(redis.call('ZRANGE', KEYS[8], '0', '-1')) do
  local run = string.match(entry, '^[^%z]*')
  if not seen[run] then
    seen[run] = true
    runs[#runs + 1] = run
    if KEYS[10] then
      redis.call('ZADD', KEYS[10], '0', run .. SEP .. conv_id)
    end
  end
end
if KEYS[10] and #runs > 0 then
  expire_not_before(KEYS[10], expire_at, decimal(expire_at))
end
return thread_reply({runs}, now, named)
