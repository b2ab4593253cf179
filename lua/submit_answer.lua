-- Accept one answer atomically: the Redis twin of app/rules.py accept_answer, choosing between
-- outcomes scored in Python.
-- KEYS[1]  session key (session:{id})
-- ARGV[1]  questionId
-- ARGV[2]  the answer to store if the question is not the session's last (JSON array)
-- ARGV[3]  the answer to store if it is the last, the final question (JSON array)
-- ARGV[4]  wager, or -1 for none
-- ARGV[5]  TTL in milliseconds
-- ARGV[6]  the caller's user id, or "" when anonymous
-- ARGV[7]  storage
-- Returns  {0, answer, completed}  accepted and appended; completed is 1 if that was the
--                                   last unanswered question
--          {1, answer}   already answered: the stored answer, nothing changed
--          {-1}          no such session (never re-created)
--          {-5}          the session belongs to another player (nothing changed, TTL untouched)
--          {-2}          questionId is not in this session
--          {-3}          wager on a question that is not the final
--          {-4, max}     wager above half the current score
-- Stored answers are arrays: [1] is the questionId, [7] the total points (app/models.py).
local raw, doc = open_session(KEYS[1], ARGV[6], ARGV[5])
if not raw then
  return {doc}
end

local position
for i, id in ipairs(doc.q) do
  if id == ARGV[1] then
    position = i
    break
  end
end
if not position then
  return {-2}
end

local score = 0
for _, answer in ipairs(doc.a) do
  if answer[1] == ARGV[1] then
    return {1, cjson.encode(answer)}
  end
  score = score + answer[7]
end

local wager = tonumber(ARGV[4])
local answer = ARGV[2]
if position == #doc.q then
  local max = math.floor(math.max(score, 0) / 2)
  if wager > max then
    return {-4, max}
  end
  answer = ARGV[3]
elseif wager >= 0 then
  return {-3}
end

append_answers(KEYS[1], doc, {answer})  -- open_session slid the TTL
return {0, answer, #doc.a == #doc.q and 1 or 0}
