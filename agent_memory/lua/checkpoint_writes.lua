-- Store pending writes of one checkpoint (LangGraph put_writes).
-- ARGV: 1 ttl_ms, 2 thread id, 3 the checkpoint's prefix (ns NUL id NUL), then (key, replace,
-- value) triples: key = task path NUL task id NUL index (fixed width), replace = '1' for the
-- special writes (errors, interrupts...) that overwrite, '0' for regular ones, which are kept
-- as first written. A write is the member prefix .. key .. NUL .. value of KEYS[7], so the
-- zset's lex order is LangGraph's writes_sort_key order.
local ttl = tonumber(ARGV[1])
for i = 4, #ARGV, 3 do
  local head = ARGV[3] .. ARGV[i] .. SEP
  local old = redis.call('ZRANGEBYLEX', KEYS[7], '[' .. head, '[' .. head .. '\255', 'LIMIT', 0, 1)[1]
  if not old or ARGV[i + 1] == '1' then
    if old then
      redis.call('ZREM', KEYS[7], old)
    end
    redis.call('ZADD', KEYS[7], 0, head .. ARGV[i + 2])
  end
end
local now = now_ms()
touch_thread(ARGV[2], now, ttl)
return thread_reply({1}, now)
