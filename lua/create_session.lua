-- Create a game session document, never over an existing key.
-- KEYS[1]  session key (session:{id})
-- ARGV[1]  the session document, JSON
-- ARGV[2]  TTL in milliseconds
-- Returns  1 if created, 0 if the key already exists (nothing changed).
if not redis.call('JSON.SET', KEYS[1], '.', ARGV[1], 'NX') then
  return 0
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
