-- Write back a session kept in an instance's memory while Redis was down, never over another.
-- Idempotent: an earlier attempt whose reply was lost may have written it already, and the
-- memory copy may have taken more answers since; those are appended, the rest left as is.
-- KEYS[1]  session key (session:{id})
-- ARGV[1]  the session document from memory, JSON
-- ARGV[2]  TTL in milliseconds (what was left of it in memory)
-- ARGV[3]  storage
-- Returns  1 written; 2 already there (same creation time and questions), missing answers
--          appended; 0 a different session holds the key (nothing changed).
if write_doc(KEYS[1], ARGV[1], ARGV[2], true) then
  return 1
end
local mine, theirs = cjson.decode(ARGV[1]), cjson.decode(read_doc(KEYS[1]))
if mine.c ~= theirs.c or table.concat(mine.q, ',') ~= table.concat(theirs.q, ',') then
  return 0
end
local stored, missing = {}, {}
for _, answer in ipairs(theirs.a) do
  stored[answer[1]] = true
end
for _, answer in ipairs(mine.a) do
  if not stored[answer[1]] then
    table.insert(missing, cjson.encode(answer))
  end
end
if #missing > 0 then
  append_answers(KEYS[1], theirs, missing, ARGV[2])
else
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 2
