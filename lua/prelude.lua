-- Prelude: prepended to every script in this folder when the service loads it (app/scripts.py),
-- so the rules of the stored document live here once and each script's SHA still follows its
-- whole text.
--
-- Every script takes the storage as its LAST argument: "json" where the server has the JSON
-- module (a RedisJSON document), "string" where it has not (the same JSON as a string, changed
-- with cjson). Either way a change is one atomic call.
--
-- The TTL rule: a session's TTL is reset in the same call as every read or write of it, so
-- each function below that reads or writes a session takes `ttl_ms`; documents without a TTL
-- (players) are written with `ttl_ms` nil and keep having none.
local JSON = ARGV[#ARGV] == 'json'

-- The document at `key` as JSON text, or false when the key does not exist.
local function read_doc(key)
  if JSON then
    return redis.call('JSON.GET', key, '.')
  end
  return redis.call('GET', key)
end

-- Write `raw` (JSON text) as the whole document at `key`. With `only_new`, never over an
-- existing key (returns false then, nothing changed). With `ttl_ms` the TTL is set; without,
-- the key keeps the TTL it had (none for a new key).
local function write_doc(key, raw, ttl_ms, only_new)
  local written
  if JSON then
    if only_new then
      written = redis.call('JSON.SET', key, '.', raw, 'NX')
    else
      written = redis.call('JSON.SET', key, '.', raw)
    end
  elseif only_new then
    written = redis.call('SET', key, raw, 'NX')
  else
    written = redis.call('SET', key, raw, 'KEEPTTL')
  end
  if written and ttl_ms then
    redis.call('PEXPIRE', key, ttl_ms)
  end
  return written
end

-- Append each JSON text of `items` to the session's answers; `doc` (the decoded document) is
-- changed to match. With `ttl_ms` the TTL is reset too; without, it is kept (the caller slid it
-- already in this call). RedisJSON appends in place; a string is re-encoded (never with an
-- empty answer list, which cjson would encode as {} instead of []).
local function append_answers(key, doc, items, ttl_ms)
  for _, item in ipairs(items) do
    table.insert(doc.a, cjson.decode(item))
    if JSON then
      redis.call('JSON.ARRAPPEND', key, '.a', item)
    end
  end
  if not JSON then
    write_doc(key, cjson.encode(doc), ttl_ms)
  elseif ttl_ms then
    redis.call('PEXPIRE', key, ttl_ms)
  end
end

-- Open a session for `user` ("" when anonymous): returns raw, doc; or nil, code with code -1
-- when there is no such session (nothing created) and -5 when it belongs to another player
-- (its TTL untouched: a stranger's request is not use). The owner's read slides the TTL.
local function open_session(key, user, ttl_ms)
  local raw = read_doc(key)
  if not raw then
    return nil, -1
  end
  local doc = cjson.decode(raw)
  if type(doc.u) == 'string' and doc.u ~= user then
    return nil, -5
  end
  redis.call('PEXPIRE', key, ttl_ms)
  return raw, doc
end
