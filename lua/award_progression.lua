-- Award a finished game's progression to its player exactly once.
-- KEYS[1]  user:{userId}    the player's document
-- KEYS[2]  awards:{userId}  ledger hash: sessionId -> "xp:gems" (same hash tag, same slot)
-- ARGV[1]  sessionId
-- ARGV[2]  xp      ARGV[3] gems
-- ARGV[4]  score   ARGV[5] correct answers   ARGV[6] questions
-- ARGV[7]  storage
-- Returns  {1, xp, gems} awarded now; {0, xp, gems} awarded before (nothing changed);
--          {-1} no such player.
local prior = redis.call('HGET', KEYS[2], ARGV[1])
if prior then
  local xp, gems = string.match(prior, '^(%d+):(%d+)$')
  return {0, tonumber(xp), tonumber(gems)}
end
local raw = read_doc(KEYS[1])
if not raw then
  return {-1}
end
local user = cjson.decode(raw)
local xp, gems, score = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
user.totalXp = user.totalXp + xp
user.totalGems = user.totalGems + gems
user.gamesPlayed = user.gamesPlayed + 1
user.totalCorrect = user.totalCorrect + tonumber(ARGV[5])
user.totalQuestions = user.totalQuestions + tonumber(ARGV[6])
if score > user.bestScore then
  user.bestScore = score
end
write_doc(KEYS[1], cjson.encode(user))
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2] .. ':' .. ARGV[3])
return {1, xp, gems}
