-- Change a player's timer multiplier and return the updated document.
-- KEYS[1]  user:{userId}
-- ARGV[1]  timer multiplier (1.0, 1.5 or 2.0, checked by the caller)
-- ARGV[2]  storage
-- Returns  {0, the user document as JSON}; {-1} no such player (nothing created).
local raw = read_doc(KEYS[1])
if not raw then
  return {-1}
end
local user = cjson.decode(raw)
user.timerMultiplier = tonumber(ARGV[1])
raw = cjson.encode(user)
write_doc(KEYS[1], raw)
return {0, raw}
