-- Change a player's timer multiplier and return the updated document.
-- KEYS[1]  user:{userId}
-- ARGV[1]  timer multiplier (1.0, 1.5 or 2.0, checked by the caller)
-- ARGV[2]  storage: "json" (RedisJSON document) or "string" (JSON string)
-- Returns  the user document as JSON, or nil if there is no such user (nothing created).
local json = ARGV[2] == 'json'
if json then
  if redis.call('EXISTS', KEYS[1]) == 0 then
    return nil
  end
  redis.call('JSON.SET', KEYS[1], '.timerMultiplier', ARGV[1])
  return redis.call('JSON.GET', KEYS[1], '.')
end
local raw = redis.call('GET', KEYS[1])
if not raw then
  return nil
end
local user = cjson.decode(raw)
user.timerMultiplier = tonumber(ARGV[1])
raw = cjson.encode(user)
redis.call('SET', KEYS[1], raw, 'KEEPTTL')
return raw
