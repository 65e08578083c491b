-- Delete every key of one conversation and its index entries.
-- KEYS[6], when given, is one more index to remove the id from (the one being erased).
-- ARGV: conversation id. Returns 1 if anything existed, else 0.
-- Cluster mode (KEYS[1..4] only): touches no index and returns {existed, user index or '',
-- agent index or ''} so that the caller removes the id from the indexes itself.
local conv_id = ARGV[1]
local extra = redis.call('HMGET', KEYS[2], 'index_user', 'index_agent')
if KEYS[5] then
  for _, key in ipairs(extra) do
    if key then
      redis.call('ZREM', key, conv_id)
    end
  end
  redis.call('ZREM', KEYS[5], conv_id)
end
if KEYS[6] then
  redis.call('ZREM', KEYS[6], conv_id)
end
local existed = 0
if redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4]) > 0 then
  existed = 1
end
if KEYS[5] then
  return existed
end
return {existed, extra[1] or '', extra[2] or ''}
