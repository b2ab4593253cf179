-- Store a player's picture and record its version in their document, in one atomic call.
-- KEYS[1]  user:{userId}
-- KEYS[2]  avatar:{userId} (same hash tag, so one cluster slot)
-- ARGV[1]  the picture: re-encoded image bytes, as served
-- ARGV[2]  its version (a short hash of the bytes), put in the avatar URL
-- ARGV[3]  storage
-- Returns  {0} stored; {-1} no such player (nothing created).
local raw = read_doc(KEYS[1])
if not raw then
  return {-1}
end
local user = cjson.decode(raw)
user.avatar = ARGV[2]
redis.call('SET', KEYS[2], ARGV[1])
write_doc(KEYS[1], cjson.encode(user))
return {0}
