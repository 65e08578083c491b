-- Remove the newest message of a conversation and return it, atomically (concurrent callers
-- never get the same message). ARGV: ttl_ms, conversation id.
-- Returns {} when the stream is empty, {'thread'} (nothing removed) when the conversation is
-- also a LangGraph thread (its checkpoints refer to stream entries: removing one would make
-- them unreadable), else {cursor, payload}; cluster mode (no KEYS[5]) adds index_info. A
-- message id that pointed at the removed entry is forgotten, so that appending that id again
-- adds it again. Count, updated_at and the sliding TTL move as for an append.
local ttl = tonumber(ARGV[1])
local conv_id = ARGV[2]

if redis.call('EXISTS', thread_keys()[1]) == 1 then
  return {'thread'}
end

local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)[1]
if not last then
  return {}
end
local cursor, payload = last[1], last[2][2]
redis.call('XDEL', KEYS[1], cursor)

if redis.call('EXISTS', KEYS[3]) == 1 then -- messages with ids exist: was this one of them?
  local ok, message = pcall(cjson.decode, payload)
  if ok and type(message) == 'table' and type(message.id) == 'string'
      and redis.call('HGET', KEYS[3], message.id) == cursor then
    redis.call('HDEL', KEYS[3], message.id)
  end
end

local now = now_ms()
local now_arg = decimal(now)
local meta = redis.call('HMGET', KEYS[2], 'id', 'message_count', 'index_user', 'index_agent',
  'index_pair')
local named = {meta[3], meta[4], meta[5]}
local count = decimal(math.max((tonumber(meta[2]) or 1) - 1, 0))
if meta[1] then
  redis.call('HSET', KEYS[2], 'message_count', count, 'updated_at', now_arg)
else -- a stream without its hash (written by hand): make the hash a reader expects
  redis.call('HSET', KEYS[2], 'id', conv_id, 'created_at', now_arg, 'updated_at', now_arg,
    'message_count', count, 'version', '1')
end
touch_conversation(conv_id, now, ttl, named)
return with_index_info({cursor, payload}, now, named)
