-- Update metadata fields with optimistic concurrency.
-- ARGV: ttl_ms, conversation id, expected version or '', number of fields to set, then
-- field/value pairs to set, then fields to delete.
-- Returns {-1, 0} missing, {0, actual} version conflict, {1, new version} done (cluster mode:
-- followed by index_info).
local ttl = tonumber(ARGV[1])
local conv_id = ARGV[2]
local version = redis.call('HGET', KEYS[2], 'version')
if not version then
  return {-1, 0}
end
if ARGV[3] ~= '' and ARGV[3] ~= version then
  return {0, tonumber(version)}
end
local n_set = tonumber(ARGV[4])
local i = 5
while i < 5 + 2 * n_set do
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
  i = i + 2
end
while i <= #ARGV do
  redis.call('HDEL', KEYS[2], ARGV[i])
  i = i + 1
end
local now = now_ms()
redis.call('HSET', KEYS[2], 'updated_at', now)
local new_version = redis.call('HINCRBY', KEYS[2], 'version', 1)
touch_conversation(conv_id, now, ttl)
return with_index_info({1, new_version}, now)
