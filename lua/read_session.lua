-- Read a game session and slide its TTL in the same atomic call.
-- KEYS[1]  session key (session:{id})
-- ARGV[1]  TTL in milliseconds
-- ARGV[2]  storage: "json" (RedisJSON document) or "string" (JSON string)
-- Returns  the document as JSON, or nil if the key does not exist (nothing created).
local doc
if ARGV[2] == 'json' then
  doc = redis.call('JSON.GET', KEYS[1], '.')
else
  doc = redis.call('GET', KEYS[1])
end
if doc then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return doc
