-- Count one use of a client's allowance for an action in a fixed window, or give one back.
-- KEYS[1]  rate:{client}:<action>
-- ARGV[1]  uses allowed per window
-- ARGV[2]  the window in milliseconds (from the first use)
-- ARGV[3]  1 to claim a use; -1 to give one back (a login that succeeded)
-- ARGV[4]  storage (unused)
-- Returns  {1, uses so far}  claimed (or given back);
--          {0, milliseconds until the window ends}  refused (nothing counted).
if tonumber(ARGV[3]) < 0 then
  if tonumber(redis.call('GET', KEYS[1]) or '0') > 0 then
    return {1, redis.call('DECR', KEYS[1])}
  end
  return {1, 0}
end
local uses = redis.call('INCR', KEYS[1])
if uses > tonumber(ARGV[1]) then
  redis.call('DECR', KEYS[1])
  return {0, math.max(redis.call('PTTL', KEYS[1]), 1)}
end
redis.call('PEXPIRE', KEYS[1], ARGV[2], 'NX')
return {1, uses}
