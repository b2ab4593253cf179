-- Claim one login attempt for an email before its password is checked, so no more guesses
-- than allowed are ever checked in a window, however many arrive at once.
-- KEYS[1]  login:{email}  hash: "all" -> attempts from every client, "c:<client>" -> from one
-- ARGV[1]  the client's address
-- ARGV[2]  attempts allowed per client and email     ARGV[3]  attempts allowed per email
-- ARGV[4]  the window in milliseconds (from the first attempt)
-- ARGV[5]  storage (unused)
-- Returns  {1, attempts from this client}  claimed;
--          {0, milliseconds until the window ends}  refused (nothing counted).
local client = 'c:' .. ARGV[1]
local mine = redis.call('HINCRBY', KEYS[1], client, 1)
local all = redis.call('HINCRBY', KEYS[1], 'all', 1)
if mine > tonumber(ARGV[2]) or all > tonumber(ARGV[3]) then
  if redis.call('HINCRBY', KEYS[1], client, -1) == 0 then
    redis.call('HDEL', KEYS[1], client)
  end
  redis.call('HINCRBY', KEYS[1], 'all', -1)
  return {0, math.max(redis.call('PTTL', KEYS[1]), 1)}
end
redis.call('PEXPIRE', KEYS[1], ARGV[4], 'NX')
return {1, mine}
