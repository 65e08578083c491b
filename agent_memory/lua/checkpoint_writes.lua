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
local i = 4
while i <= #ARGV do
  local head, value, k = ARGV[3] .. ARGV[i] .. SEP, ARGV[i + 2], tonumber(ARGV[i + 3])
  local cursors = k > 0 and message_cursors(ARGV, i + 5, k, ARGV[i + 4])
  if cursors then
    value = string.match(value, '^[^%z]*') .. SEP .. 'am.ref' .. SEP .. cursors
  end
  local old = redis.call('ZRANGEBYLEX', KEYS[7], '[' .. head, '[' .. head .. '\255', 'LIMIT', 0, 1)[1]
  if not old or ARGV[i + 1] == '1' then
    if old then
      redis.call('ZREM', KEYS[7], old)
    end
    redis.call('ZADD', KEYS[7], 0, head .. value)
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
local now = now_ms()
touch_thread(ARGV[2], now, ttl)
return thread_reply({1}, now)
