-- Create a document (a game session, or a player), never over an existing key.
-- KEYS[1]  the key (session:{id} or user:{<id>})
-- ARGV[1]  the document, JSON
-- ARGV[2]  TTL in milliseconds, or 0 for none (players)
-- ARGV[3]  storage
-- Returns  1 if created, 0 if the key already exists (nothing changed).
local ttl_ms = tonumber(ARGV[2])
if not write_doc(KEYS[1], ARGV[1], ttl_ms > 0 and ttl_ms or nil, true) then
  return 0
end
return 1
