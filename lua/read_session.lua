-- Read a game session and slide its TTL in the same atomic call.
-- KEYS[1]  session key (session:{id})
-- ARGV[1]  TTL in milliseconds
-- ARGV[2]  the caller's user id, or "" when anonymous
-- ARGV[3]  storage: "json" (RedisJSON document) or "string" (JSON string)
-- Returns  the document as JSON; nil if the key does not exist (nothing created); -5 if the
--          session belongs to another user (TTL untouched).
local doc
if ARGV[3] == 'json' then
  doc = redis.call('JSON.GET', KEYS[1], '.')
else
  doc = redis.call('GET', KEYS[1])
end
if not doc then
  return nil
end
local owner = cjson.decode(doc).u
if type(owner) == 'string' and owner ~= ARGV[2] then
  return -5
end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return doc
