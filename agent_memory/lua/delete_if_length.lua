-- Delete a list only if it still holds ARGV[1] elements (nothing was pushed since it was read).
-- KEYS[1]: the list. Returns 1 deleted, 0 absent, -1 changed (kept).
local n = redis.call('LLEN', KEYS[1])
if n == 0 then
  return 0
end
if n ~= tonumber(ARGV[1]) then
  return -1
end
return redis.call('DEL', KEYS[1])
