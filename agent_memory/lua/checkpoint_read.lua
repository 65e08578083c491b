-- Read LangGraph checkpoints with their values and pending writes, in one step.
-- ARGV: 1 ttl_ms to refresh the thread's expiry ('' = reads do not extend it), 2 mode:
--   'one'    ARGV[3] = the checkpoint (ns NUL id)
--   'latest' ARGV[3] = ns: the newest checkpoint of that namespace
--   (both: ARGV[4] = the messages reference the caller holds decoded, '' or absent = none)
--   'page'   ARGV[3], ARGV[4] = high and low bounds (ZREVRANGEBYLEX), ARGV[5] = count
--   'history' ARGV[3] = ns, ARGV[4] = checkpoint id ('' = latest), ARGV[5..] = channels:
--            get_delta_channel_history's walk up the parent chain (see history())
-- Returns a list of {checkpoint, record, values, writes}: values are (field, value) pairs, a
-- messages reference read as {reference, payload...}, or {reference, 1} when it is the one the
-- caller holds (ARGV[4]); writes are the members of KEYS[7].
local function latest(ns)
  return redis.call('ZREVRANGEBYLEX', KEYS[5], '[' .. ns .. SEP .. '\255', '[' .. ns .. SEP,
    'LIMIT', '0', '1')[1]
end

-- A pending write's member, or {member, payload...} for one stored as a reference (its type,
-- the 7th part, is 'am.ref'; then the shape and the cursors of its messages).
local function write_of(stored)
  local at = 0
  for _ = 1, 6 do
    at = string.find(stored, SEP, at + 1, true)
  end
  if string.sub(stored, at + 1, at + 7) ~= 'am.ref' .. SEP then
    return stored
  end
  local out, first = {stored}, true
  for token in string.gmatch(string.sub(stored, at + 8), '%S+') do
    if first then
      first = false
    else
      local payload = entry_payload(token)
      if payload then
        out[#out + 1] = payload
      end
    end
  end
  return out
end

local function writes_of(member)
  local prefix = member .. SEP
  local found = redis.call('ZRANGEBYLEX', KEYS[7], '[' .. prefix, '[' .. prefix .. '\255')
  for i = 1, #found do
    found[i] = write_of(found[i])
  end
  return found
end

local cached = ARGV[2] ~= 'history' and ARGV[2] ~= 'page' and ARGV[4] or ''

local function messages(ref)
  if ref == cached then
    return {ref, 1}
  end
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
  local head = redis.call('HGET', KEYS[6], 'c' .. SEP .. member)
  if not head then
    return false
  end
  local fields = value_fields(ns_of(member), (parse_head(head)))
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
  return {member, head, values, writes_of(member)}
end


-- The ancestors of a checkpoint, nearest first, until every channel asked for has a stored
-- value: {checkpoint, {channel, value, ...} the values found there, writes} each.
local function history(ns, target, channels)
  local remaining, left = {}, 0
  for _, channel in ipairs(channels) do
    if not remaining[channel] then
      remaining[channel], left = true, left + 1
    end
  end
  local out = {}
  local first = target and redis.call('HGET', KEYS[6], 'c' .. SEP .. target)
  local parent = first and select(2, parse_head(first))
  while parent and parent ~= '' and left > 0 do
    local member = ns .. SEP .. parent
    local head = redis.call('HGET', KEYS[6], 'c' .. SEP .. member)
    if not head then
      break
    end
    local names, next_parent = parse_head(head)
    local seeds = {}
    for _, name in ipairs(value_fields(ns, names)) do
      local channel = string.match(name, '^b%z[^%z]*%z([^%z]*)%z')
      if channel and remaining[channel] then
        local value = redis.call('HGET', KEYS[6], name)
        if value and value ~= 'empty' .. SEP then
          if string.sub(value, 1, #MESSAGES) == MESSAGES then
            value = messages(string.sub(value, #MESSAGES + 1))
          end
          seeds[#seeds + 1] = channel
          seeds[#seeds + 1] = value
        end
      end
    end
    out[#out + 1] = {member, seeds, writes_of(member)}
    for j = 1, #seeds, 2 do
      remaining[seeds[j]], left = nil, left - 1
    end
    parent = next_parent
  end
  return out
end

local mode = ARGV[2]
if mode == 'history' then
  local target = ARGV[4] ~= '' and ARGV[3] .. SEP .. ARGV[4] or latest(ARGV[3])
  return history(ARGV[3], target, {unpack(ARGV, 5)})
end
local members
if mode == 'one' then
  members = {ARGV[3]}
elseif mode == 'latest' then
  members = {latest(ARGV[3])}
else
  members = redis.call('ZREVRANGEBYLEX', KEYS[5], ARGV[3], ARGV[4], 'LIMIT', '0', ARGV[5])
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
