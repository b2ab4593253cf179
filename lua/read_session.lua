-- Read a game session document and slide its TTL in the same atomic call.
-- KEYS[1]  session key (session:{id})
-- ARGV[1]  TTL in milliseconds
-- Returns  the document as JSON, or nil if the key does not exist (nothing created).
local doc = redis.call('JSON.GET', KEYS[1], '.')
if doc then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return doc
