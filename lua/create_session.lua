-- Create a game session, never over an existing key.
-- KEYS[1]  session key (session:{id})
-- ARGV[1]  the session document, JSON
-- ARGV[2]  TTL in milliseconds
-- ARGV[3]  storage: "json" (RedisJSON document) or "string" (JSON string, no module needed)
-- Returns  1 if created, 0 if the key already exists (nothing changed).
local created
if ARGV[3] == 'json' then
  created = redis.call('JSON.SET', KEYS[1], '.', ARGV[1], 'NX')
else
  created = redis.call('SET', KEYS[1], ARGV[1], 'NX')
end
if not created then
  return 0
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
