-- Read LangGraph checkpoints with their values and pending writes, in one step.
-- ARGV: 1 ttl_ms to refresh the thread's expiry ('' = reads do not extend it), 2 mode:
--   'one'    ARGV[3] = the checkpoint (ns NUL id)
--   'latest' ARGV[3] = ns: the newest checkpoint of that namespace
--   'page'   ARGV[3], ARGV[4] = high and low bounds (ZREVRANGEBYLEX), ARGV[5] = count
-- Returns a list of {checkpoint, record, values, writes}: values are (field, value) pairs, a
-- messages reference read as {reference, payload...}; writes are the members of KEYS[7].
local mode = ARGV[2]
local members
if mode == 'one' then
  members = {ARGV[3]}
elseif mode == 'latest' then
  members = redis.call('ZREVRANGEBYLEX', KEYS[5], '[' .. ARGV[3] .. SEP .. '\255',
    '[' .. ARGV[3] .. SEP, 'LIMIT', 0, 1)
else
  members = redis.call('ZREVRANGEBYLEX', KEYS[5], ARGV[3], ARGV[4], 'LIMIT', 0, ARGV[5])
end

local function messages(ref)
  local out = {ref}
  local first = true
  local from
  for token in string.gmatch(ref, '%S+') do
    if first then
      first = false
    elseif not from then
      from = token
    else
      for _, entry in ipairs(redis.call('XRANGE', KEYS[1], from, token)) do
        out[#out + 1] = entry[2][2]
      end
      from = nil
    end
  end
  return out
end

local function load(member)
  local head = redis.call('HMGET', KEYS[6], 'c' .. SEP .. member, 'v' .. SEP .. member)
  if not head[1] then
    return false
  end
  local fields = {}
  for name in string.gmatch(head[2], '[^\1]+') do
    fields[#fields + 1] = name
  end
  local values = {}
  if #fields > 0 then
    local got = redis.call('HMGET', KEYS[6], unpack(fields))
    for j = 1, #fields do
      local value = got[j]
      if value and string.sub(value, 1, #MESSAGES) == MESSAGES then
        value = messages(string.sub(value, #MESSAGES + 1))
      end
      values[#values + 1] = fields[j]
      values[#values + 1] = value
    end
  end
  local prefix = member .. SEP
  local writes = redis.call('ZRANGEBYLEX', KEYS[7], '[' .. prefix, '[' .. prefix .. '\255')
  return {member, head[1], values, writes}
end

local out = {}
for _, member in ipairs(members) do
  local found = load(member)
  if found then
    out[#out + 1] = found
  end
end
if ARGV[1] ~= '' and #out > 0 then
  for i = 1, 8 do
    redis.call('PEXPIRE', KEYS[i], ARGV[1])
  end
end
return out
