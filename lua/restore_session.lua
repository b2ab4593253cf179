-- Write back a session kept in an instance's memory while Redis was down, never over another.
-- Idempotent: an earlier attempt whose reply was lost may have written it already, and the
-- memory copy may have taken more answers since; those are appended, the rest left as is.
-- KEYS[1]  session key (session:{id})
-- ARGV[1]  the session document from memory, JSON
-- ARGV[2]  TTL in milliseconds (what was left of it in memory)
-- ARGV[3]  storage: "json" (RedisJSON document) or "string" (JSON string)
-- Returns  1 written; 2 already there (same creation time and questions), missing answers
--          appended; 0 a different session holds the key (nothing changed).
local json = ARGV[3] == 'json'
local existing
if json then
  existing = redis.call('JSON.GET', KEYS[1], '.')
else
  existing = redis.call('GET', KEYS[1])
end
if not existing then
  if json then
    redis.call('JSON.SET', KEYS[1], '.', ARGV[1])
  else
    redis.call('SET', KEYS[1], ARGV[1])
  end
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end

local mine, theirs = cjson.decode(ARGV[1]), cjson.decode(existing)
if mine.c ~= theirs.c or table.concat(mine.q, ',') ~= table.concat(theirs.q, ',') then
  return 0
end
local stored = {}
for _, answer in ipairs(theirs.a) do
  stored[answer[1]] = true
end
local appended = false
for _, answer in ipairs(mine.a) do
  if not stored[answer[1]] then
    appended = true
    if json then
      redis.call('JSON.ARRAPPEND', KEYS[1], '.a', cjson.encode(answer))
    else
      table.insert(theirs.a, answer)
    end
  end
end
-- Re-encoding only when something was added: cjson would turn an empty array into {}.
if appended and not json then
  redis.call('SET', KEYS[1], cjson.encode(theirs))
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 2
