-- Rotate a refresh token: the presented one must be its family's live token, or the one it
-- replaced, presented again within the grace window (two refreshes sent at once by one client).
-- KEYS[1]  refresh:{family}  "<live token id> <previous token id> <grace ends, ms>" (a family
--          started at login holds only the live id)
-- ARGV[1]  id of the presented refresh token
-- ARGV[2]  id of the new refresh token
-- ARGV[3]  lifetime of the new token in milliseconds
-- ARGV[4]  now, milliseconds since the epoch      ARGV[5]  the grace window in milliseconds
-- ARGV[6]  storage (unused)
-- Returns  {1}  rotated: ARGV[2] is the live token now
--          {2, live id}  the previous token within the grace window: nothing changed, the
--                        caller hands out the live token again
--          {0}  the family was revoked or expired
--          {-1} a used token presented again: reuse, the whole family is revoked.
local value = redis.call('GET', KEYS[1])
if not value then
  return {0}
end
local live, previous, grace_ends = string.match(value, '^(%S+) ?(%S*) ?(%S*)$')
local now = tonumber(ARGV[4])
if live == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2] .. ' ' .. live .. ' ' .. (now + tonumber(ARGV[5])), 'PX', ARGV[3])
  return {1}
end
if previous == ARGV[1] and now <= tonumber(grace_ends) then
  return {2, live}
end
redis.call('DEL', KEYS[1])
return {-1}
