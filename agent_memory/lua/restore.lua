-- Restore one conversation from an export (agent-memory import), one chunk per call.
-- ARGV: expire_at_ms, conversation id, final ('1' on its last chunk), user index key or '',
-- agent index key or '', (user, agent) index key or '', number of metadata fields n, n
-- field/value pairs, then
-- (cursor, message id or '', payload) triples, oldest first.
-- A conversation whose metadata hash exists is left alone: {0, 0}. One that has expired
-- already is not restored: {-1, 0}. Otherwise entries are added under their exported cursors
-- (an entry at or below the stream's top, left by an interrupted earlier run, is skipped) and
-- {1, added} is returned. The metadata hash and the index entries are written with the last
-- chunk, so a conversation is listed only once complete; every key gets the exported absolute
-- expiry at once, so an interrupted import leaves nothing without a TTL.
local expire_at = tonumber(ARGV[1])
local conv_id = ARGV[2]
if redis.call('EXISTS', KEYS[2]) == 1 then
  return {0, 0}
end
if expire_at <= now_ms() then
  return {-1, 0}
end
local nfields = tonumber(ARGV[7])
local added = 0
for i = 8 + 2 * nfields, #ARGV, 3 do
  local reply = redis.pcall('XADD', KEYS[1], ARGV[i], 'm', ARGV[i + 2])
  if type(reply) ~= 'table' or not reply.err then
    added = added + 1
    if ARGV[i + 1] ~= '' then
      redis.call('HSET', KEYS[3], ARGV[i + 1], ARGV[i])
    end
  end
end
redis.call('PEXPIREAT', KEYS[1], expire_at)
redis.call('PEXPIREAT', KEYS[3], expire_at)
if ARGV[3] ~= '1' then
  return {1, added}
end

for i = 8, 7 + 2 * nfields, 2 do
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
end
redis.call('HSET', KEYS[2], 'id', conv_id)
if ARGV[4] ~= '' then
  redis.call('HSET', KEYS[2], 'index_user', ARGV[4])
end
if ARGV[5] ~= '' then
  redis.call('HSET', KEYS[2], 'index_agent', ARGV[5])
end
if ARGV[6] ~= '' then
  redis.call('HSET', KEYS[2], 'index_pair', ARGV[6])
end
redis.call('PEXPIREAT', KEYS[2], expire_at)
if KEYS[5] then  -- single server: the indexes too (cluster mode: the caller does it)
  local score = tonumber(redis.call('HGET', KEYS[2], 'updated_at')) or now_ms()
  -- the entry lives until expire_at although scored at its last activity: the TTL marker
  -- (see prune_cutoff) must cover expire_at - score, so that writes do not prune it
  redis.call('ZADD', KEYS[6], 'GT', string.format('%d', expire_at - score), 'ttl')
  if redis.call('PEXPIRETIME', KEYS[6]) < expire_at then
    redis.call('PEXPIREAT', KEYS[6], expire_at)
  end
  for _, key in ipairs({KEYS[5], ARGV[4], ARGV[5], ARGV[6]}) do
    if key ~= '' then
      redis.call('ZADD', key, score, conv_id)
      if redis.call('PEXPIRETIME', key) < expire_at then
        redis.call('PEXPIREAT', key, expire_at)
      end
    end
  end
end
return {1, added}
