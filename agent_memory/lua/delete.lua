-- Delete every key of one conversation and its index entries.
-- KEYS[7], when given, is one more index to remove the id from (the one being erased);
-- KEYS[6] (the TTL marker) is not used here.
-- ARGV: conversation id. Returns 1 if anything existed, else 0.
-- Cluster mode (KEYS[1..4] only): touches no index and returns {existed, user index or '',
-- agent index or '', pair index or ''} so that the caller removes the id from them itself.
local conv_id = ARGV[1]
local extra = redis.call('HMGET', KEYS[2], 'index_user', 'index_agent', 'index_pair')
if KEYS[5] then
  for i = 1, 3 do
    if extra[i] then
      redis.call('ZREM', extra[i], conv_id)
    end
  end
  redis.call('ZREM', KEYS[5], conv_id)
end
if KEYS[7] then
  redis.call('ZREM', KEYS[7], conv_id)
end
local existed = 0
if redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4]) > 0 then
  existed = 1
end
if KEYS[5] then
  return existed
end
return {existed, extra[1] or '', extra[2] or '', extra[3] or ''}
