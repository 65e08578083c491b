-- Remove index entries whose conversation has expired (its metadata hash is gone).
-- KEYS[1] the index, KEYS[2..] the metadata hashes; ARGV the matching conversation ids.
local removed = 0
for i = 2, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 0 then
    removed = removed + redis.call('ZREM', KEYS[1], ARGV[i - 1])
  end
end
return removed
