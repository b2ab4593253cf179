-- Award a finished game's progression to its player exactly once.
-- KEYS[1]  user:{userId}         the player's document
-- KEYS[2]  awards:{userId}       ledger hash: sessionId -> "xp:gems"
-- KEYS[3]  award-times:{userId}  sorted set: sessionId -> last results call, ms
--          (all three share the user id as hash tag: one cluster slot)
-- ARGV[1]  sessionId
-- ARGV[2]  xp      ARGV[3] gems
-- ARGV[4]  score   ARGV[5] correct answers   ARGV[6] questions
-- ARGV[7]  now, milliseconds since the epoch
-- ARGV[8]  how long a ledger entry outlives the last results call of its game, ms
-- ARGV[9]  storage
-- Returns  {1, xp, gems} awarded now; {0, xp, gems} awarded before (nothing changed);
--          {-1} no such player.
-- The ledger stays bounded: each call forgets up to 20 entries whose game has not been read
-- for the retention period (its session expired long before: a session lives an hour after
-- its last use, so no results call can award it again).
local now = tonumber(ARGV[7])
local expired = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now - tonumber(ARGV[8]), 'LIMIT', 0, 20)
for _, session in ipairs(expired) do
  redis.call('HDEL', KEYS[2], session)
  redis.call('ZREM', KEYS[3], session)
end

local prior = redis.call('HGET', KEYS[2], ARGV[1])
if prior then
  redis.call('ZADD', KEYS[3], now, ARGV[1])
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
redis.call('ZADD', KEYS[3], now, ARGV[1])
return {1, xp, gems}
