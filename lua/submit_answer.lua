-- Accept one answer atomically: the Redis twin of app/rules.py accept_answer, choosing between
-- outcomes scored in Python.
-- KEYS[1]  session key (session:{id})
-- ARGV[1]  questionId
-- ARGV[2]  the answer to store if the question is not the session's last (JSON array)
-- ARGV[3]  the answer to store if it is the last, the final question (JSON array)
-- ARGV[4]  ARGV[2] as stored when the server's clock contradicts the timer
-- ARGV[5]  ARGV[3] as stored when the server's clock contradicts the timer
-- ARGV[6]  the response time ARGV[2] claims, seconds   ARGV[7] the one ARGV[3] claims
-- ARGV[8]  wager, or -1 for none
-- ARGV[9]  the latest moment the game's claimed response times may reach, counted from its
--          creation: received at + clock slack, milliseconds since the epoch
-- ARGV[10] TTL in milliseconds
-- ARGV[11] the caller's user id, or "" when anonymous
-- ARGV[12] storage
-- Returns  {0, answer, completed}  accepted and appended; completed is 1 if that was the
--                                   last unanswered question
--          {1, answer}   already answered: the stored answer, nothing changed
--          {-1}          no such session (never re-created)
--          {-5}          the session belongs to another player (nothing changed, TTL untouched)
--          {-2}          questionId is not in this session
--          {-3}          wager on a question that is not the final
--          {-4, max}     wager above half the current score
-- Stored answers are arrays: [1] questionId, [3] response time, [7] total points (app/models.py).

-- Milliseconds since the epoch of an ISO-8601 UTC time as msgspec writes it
-- ("2026-11-26T09:30:00.123456Z"): days from the civil date (H. Hinnant's algorithm).
local function epoch_ms(iso)
  local y, m, d, hh, mm, ss = string.match(iso, '^(%d+)-(%d+)-(%d+)T(%d+):(%d+):([%d.]+)')
  y, m, d = tonumber(y), tonumber(m), tonumber(d)
  if m <= 2 then
    y = y - 1
  end
  local era = math.floor(y / 400)
  local yoe = y - era * 400
  local doy = math.floor((153 * ((m + 9) % 12) + 2) / 5) + d - 1
  local doe = yoe * 365 + math.floor(yoe / 4) - math.floor(yoe / 100) + doy
  local days = era * 146097 + doe - 719468
  return ((days * 24 + tonumber(hh)) * 60 + tonumber(mm)) * 60000 + tonumber(ss) * 1000
end

local raw, doc = open_session(KEYS[1], ARGV[11], ARGV[10])
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

local score, claimed = 0, 0
for _, answer in ipairs(doc.a) do
  if answer[1] == ARGV[1] then
    return {1, cjson.encode(answer)}
  end
  score = score + answer[7]
  claimed = claimed + answer[3]
end

local wager = tonumber(ARGV[8])
local answer, implausible = ARGV[2], ARGV[4]
if position == #doc.q then
  local max = math.floor(math.max(score, 0) / 2)
  if wager > max then
    return {-4, max}
  end
  answer, implausible, claimed = ARGV[3], ARGV[5], claimed + tonumber(ARGV[7])
elseif wager >= 0 then
  return {-3}
else
  claimed = claimed + tonumber(ARGV[6])
end
if epoch_ms(doc.c) + claimed * 1000 > tonumber(ARGV[9]) then
  answer = implausible
end

append_answers(KEYS[1], doc, {answer})  -- open_session slid the TTL
return {0, answer, #doc.a == #doc.q and 1 or 0}
