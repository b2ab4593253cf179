-- Read a game session and slide its TTL in the same atomic call.
-- KEYS[1]  session key (session:{id})
-- ARGV[1]  TTL in milliseconds
-- ARGV[2]  the caller's user id, or "" when anonymous
-- ARGV[3]  storage
-- Returns  {0, document as JSON}; {-1} no such session (nothing created); {-5} the session
--          belongs to another player (TTL untouched).
local raw, code = open_session(KEYS[1], ARGV[2], ARGV[1])
if not raw then
  return {code}
end
return {0, raw}
