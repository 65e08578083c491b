-- Create a conversation; returns its creation time (ms), or 0 if it exists.
-- ARGV: ttl_ms, conversation id, user index key or '', agent index key or '', then field/value
-- pairs for the metadata hash.
local ttl = tonumber(ARGV[1])
local conv_id = ARGV[2]
if redis.call('EXISTS', KEYS[2]) == 1 then
  return 0
end
local now = now_ms()
redis.call('HSET', KEYS[2], 'id', conv_id, 'created_at', now, 'updated_at', now,
  'message_count', 0, 'version', 1)
if ARGV[3] ~= '' then
  redis.call('HSET', KEYS[2], 'index_user', ARGV[3])
end
if ARGV[4] ~= '' then
  redis.call('HSET', KEYS[2], 'index_agent', ARGV[4])
end
for i = 5, #ARGV, 2 do
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
end
touch_conversation(conv_id, now, ttl)
return now
