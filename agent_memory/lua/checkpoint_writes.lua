-- Store pending writes of one checkpoint (LangGraph put_writes).
-- ARGV: 1 ttl_ms, 2 thread id, 3 the checkpoint's prefix (ns NUL id NUL), then per write: key,
-- replace, value, k and, when k > 0 (a write of messages with ids), its shape ('L' list, 'M'
-- one message) and k (message id, payload) pairs. key = task path NUL task id NUL index (fixed
-- width), replace = '1' for the special writes (errors, interrupts...) that overwrite, '0' for regular ones, which are kept
-- as first written. A write of messages whose ids are all in the stream with these payloads
-- is stored as a reference to them (am.ref, shape, cursors); else its spec (key, shape, k,
-- pairs, each "<length>:<bytes>") is appended to the data hash's field p NUL prefix, for the
-- next checkpoint's put (checkpoint_put.lua). A write is the member prefix .. key .. NUL .. value of KEYS[7], so the
-- zset's lex order is LangGraph's writes_sort_key order.
local ttl = tonumber(ARGV[1])
local spec = {}

-- The writes already stored of one task of this checkpoint, head (prefix .. key .. NUL) ->
-- member: every write of a call is one task's (same task path and id: only the fixed-width
-- index differs), so one ZRANGEBYLEX per call finds them all.
local stored = {}
local task_read = {}
local function stored_write(head)
  local task = string.sub(head, 1, -12) -- less the 10 digits of the index and the NUL
  if not task_read[task] then
    task_read[task] = true
    local found = redis.call('ZRANGEBYLEX', KEYS[7], '[' .. task, '[' .. task .. '\255')
    for _, old in ipairs(found) do
      stored[string.sub(old, 1, #head)] = old
    end
  end
  return stored[head]
end

local wrote = false
local i = 4
while i <= #ARGV do
  local head, value, k = ARGV[3] .. ARGV[i] .. SEP, ARGV[i + 2], tonumber(ARGV[i + 3])
  local cursors = k > 0 and message_cursors(ARGV, i + 5, k, ARGV[i + 4])
  if cursors then
    value = string.match(value, '^[^%z]*') .. SEP .. 'am.ref' .. SEP .. cursors
  end
  local old = stored_write(head)
  if not old or ARGV[i + 1] == '1' then
    if old then
      redis.call('ZREM', KEYS[7], old)
    end
    redis.call('ZADD', KEYS[7], '0', head .. value)
    stored[head] = head .. value
    wrote = true
    if k > 0 and not cursors then
      -- not in the stream yet: the next checkpoint's put will make it a reference
      for _, j in ipairs({i, i + 4, i + 3}) do
        spec[#spec + 1] = decimal(#ARGV[j]) .. ':' .. ARGV[j]
      end
      for j = i + 5, i + 4 + 2 * k do
        spec[#spec + 1] = decimal(#ARGV[j]) .. ':' .. ARGV[j]
      end
    end
  end
  i = i + 4 + (k > 0 and 1 + 2 * k or 0)
end
if #spec > 0 then
  local field = 'p' .. SEP .. ARGV[3]
  redis.call('HSET', KEYS[6], field, (redis.call('HGET', KEYS[6], field) or '') ..
    table.concat(spec))
end
-- Sliding expiry (refresh_skippable): this call wrote into the writes, and into the data hash
-- when it left a spec. 'refreshed' only in an existing hash (a write to a deleted thread
-- creates none).
local now = now_ms()
local meta = read_meta()
local at, named = thread_fresh(ARGV[2], now, ttl, meta, written_keys(KEYS[7], wrote, KEYS[6],
  #spec > 0))
if not at then
  touch_thread(ARGV[2], now, ttl, named)
  if meta[1] then
    redis.call('HSET', KEYS[2], 'refreshed', decimal(now + ttl))
  end
end
return thread_reply({1}, now, named)
