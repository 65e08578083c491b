-- Create a conversation; returns its creation time (ms), or 0 if it exists.
-- ARGV: ttl_ms, conversation id, user index key or '', agent index key or '', (user, agent)
-- index key or '', then field/value pairs for the metadata hash.
local ttl = tonumber(ARGV[1])
local conv_id = ARGV[2]
if redis.call('EXISTS', KEYS[2]) == 1 then
  return 0
end
local now = now_ms()
redis.call('HSET', KEYS[2], 'id', conv_id, 'created_at', now, 'updated_at', now,
  'message_count', 0, 'version', 1)
local names = {'index_user', 'index_agent', 'index_pair'}
for i = 1, 3 do
  if ARGV[2 + i] ~= '' then
    redis.call('HSET', KEYS[2], names[i], ARGV[2 + i])
  end
end
for i = 6, #ARGV, 2 do
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
end
touch_conversation(conv_id, now, ttl)
return now
