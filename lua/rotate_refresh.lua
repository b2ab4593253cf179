-- Rotate a refresh token: the presented one must be its family's live token.
-- KEYS[1]  refresh:{family}  the id of the family's one live refresh token
-- ARGV[1]  id of the presented refresh token
-- ARGV[2]  id of the new refresh token
-- ARGV[3]  lifetime of the new token in milliseconds
-- ARGV[4]  storage (unused: the family is a plain string either way)
-- Returns  1 rotated; 0 the family is revoked or expired; -1 the presented token was already
--          used (reuse: the whole family is revoked).
local live = redis.call('GET', KEYS[1])
if not live then
  return 0
end
if live ~= ARGV[1] then
  redis.call('DEL', KEYS[1])
  return -1
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
