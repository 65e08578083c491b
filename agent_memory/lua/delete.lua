-- Delete every key of one conversation and its index entries.
-- KEYS[6], when given, is one more index to remove the id from (the one being erased).
-- ARGV: conversation id. Returns 1 if anything existed, else 0.
local conv_id = ARGV[1]
local extra = redis.call('HMGET', KEYS[2], 'index_user', 'index_agent')
for _, key in ipairs(extra) do
  if key then
    redis.call('ZREM', key, conv_id)
  end
end
redis.call('ZREM', KEYS[5], conv_id)
if KEYS[6] then
  redis.call('ZREM', KEYS[6], conv_id)
end
local existed = redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4])
if existed > 0 then
  return 1
end
return 0
