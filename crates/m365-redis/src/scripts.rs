//! The Lua scripts: every change that must be atomic in Redis.
//!
//! Numbers written by a script go through `num` (`%.0f`), so they stay
//! plain integers whatever Lua's number formatting does.

use std::sync::LazyLock;

use redis::Script;

/// Helpers prepended to the entry scripts.
const ENTRY_HELPERS: &str = r#"
local function num(n) return string.format('%.0f', n) end
-- Removes one entry and its index memberships. Returns 1, account, resource
-- when it existed, else 0.
local function drop_entry(prefix, id)
  local ek = prefix .. ':e:' .. id
  local v = redis.call('HMGET', ek, 'a', 'r', 't')
  if not v[1] or not v[2] then
    redis.call('DEL', ek)
    return 0
  end
  local base = v[1] .. ':' .. v[2]
  redis.call('ZREM', prefix .. ':ix:' .. base, id)
  if v[3] and v[3] ~= '' then
    for tag in string.gmatch(v[3], '[^,]+') do
      redis.call('ZREM', prefix .. ':tg:' .. base .. ':' .. tag, id)
    end
  end
  redis.call('DEL', ek)
  return 1, v[1], v[2]
end
"#;

fn entry_script(body: &str) -> Script {
    Script::new(&format!("{ENTRY_HELPERS}\n{body}"))
}

/// KEYS: entry, index, stats, resources, accounts.
/// ARGV: prefix, id, acct, res, sealed account, payload, encoding, created,
/// fresh_until, expires_at, raw bytes, stored bytes, sealed key text,
/// deadline, tags (comma-separated).
pub(crate) static SET: LazyLock<Script> = LazyLock::new(|| {
    entry_script(
        r#"
local prefix, id, acct, res = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local base = prefix .. ':tg:' .. acct .. ':' .. res .. ':'
local old = redis.call('HGET', KEYS[1], 't')
if old and old ~= '' then
  for tag in string.gmatch(old, '[^,]+') do
    redis.call('ZREM', base .. tag, id)
  end
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'p', ARGV[6], 'e', ARGV[7], 'c', ARGV[8], 'f', ARGV[9],
  'x', ARGV[10], 'rb', ARGV[11], 'sb', ARGV[12], 'k', ARGV[13], 'a', acct, 'r', res, 't', ARGV[15])
redis.call('PEXPIREAT', KEYS[1], ARGV[14])
redis.call('ZADD', KEYS[2], ARGV[14], id)
if ARGV[15] ~= '' then
  for tag in string.gmatch(ARGV[15], '[^,]+') do
    redis.call('ZADD', base .. tag, ARGV[14], id)
  end
end
redis.call('HINCRBY', KEYS[3], 'writes', 1)
redis.call('SADD', KEYS[4], res)
redis.call('HSETNX', KEYS[5], acct, ARGV[5])
return 1
"#,
    )
});

/// KEYS: entry, stats, resources, accounts. ARGV: now, acct, res, sealed account.
/// Returns `{payload, encoding, created, fresh_until, expires_at, raw bytes}` or nil,
/// and counts the read.
pub(crate) static GET: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local v = redis.call('HMGET', KEYS[1], 'p', 'e', 'c', 'f', 'x', 'rb')
local field = 'misses'
if v[1] then
  local now = tonumber(ARGV[1])
  if now < tonumber(v[4] or '0') then
    field = 'hits'
  elseif now < tonumber(v[5] or '0') then
    field = 'stale_hits'
  end
end
redis.call('HINCRBY', KEYS[2], field, 1)
redis.call('SADD', KEYS[3], ARGV[3])
redis.call('HSETNX', KEYS[4], ARGV[2], ARGV[4])
if not v[1] then return false end
return v
"#,
    )
});

/// KEYS: index or tag set, stats, resources, accounts.
/// ARGV: prefix, acct, res, sealed account.
/// Removes every entry the set names (of that account and resource), then
/// the set. Returns how many entries existed.
pub(crate) static INVALIDATE: LazyLock<Script> = LazyLock::new(|| {
    entry_script(
        r#"
local prefix, acct, res = ARGV[1], ARGV[2], ARGV[3]
local n = 0
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local v = redis.call('HMGET', prefix .. ':e:' .. id, 'a', 'r')
  if v[1] == acct and v[2] == res then
    n = n + drop_entry(prefix, id)
  end
end
redis.call('DEL', KEYS[1])
if n > 0 then
  redis.call('HINCRBY', KEYS[2], 'invalidations', n)
  redis.call('SADD', KEYS[3], res)
  redis.call('HSETNX', KEYS[4], acct, ARGV[4])
end
return n
"#,
    )
});

/// ARGV: prefix, count ('1' counts invalidations), entry ids…
/// Removes those entries. Returns how many existed.
pub(crate) static DROP_IDS: LazyLock<Script> = LazyLock::new(|| {
    entry_script(
        r#"
local prefix, count = ARGV[1], ARGV[2] == '1'
local n = 0
for i = 3, #ARGV do
  local existed, acct, res = drop_entry(prefix, ARGV[i])
  if existed == 1 then
    n = n + 1
    if count then
      redis.call('HINCRBY', prefix .. ':st:' .. acct .. ':' .. res, 'invalidations', 1)
    end
  end
end
return n
"#,
    )
});

/// KEYS: index sets. ARGV: prefix.
/// Removes every entry of those sets, then the sets. Returns how many existed.
pub(crate) static DROP_INDEXES: LazyLock<Script> = LazyLock::new(|| {
    entry_script(
        r#"
local prefix = ARGV[1]
local n = 0
for _, ix in ipairs(KEYS) do
  for _, id in ipairs(redis.call('ZRANGE', ix, 0, -1)) do
    n = n + drop_entry(prefix, id)
  end
  redis.call('DEL', ix)
end
return n
"#,
    )
});

/// KEYS: resources, accounts, the account's task set.
/// ARGV: prefix, acct.
/// Removes the account's entries, counters, registry entry and tasks.
/// Returns how many entries existed.
pub(crate) static PURGE_ACCOUNT: LazyLock<Script> = LazyLock::new(|| {
    entry_script(
        r#"
local prefix, acct = ARGV[1], ARGV[2]
local n = 0
for _, res in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local ix = prefix .. ':ix:' .. acct .. ':' .. res
  for _, id in ipairs(redis.call('ZRANGE', ix, 0, -1)) do
    n = n + drop_entry(prefix, id)
  end
  redis.call('DEL', ix, prefix .. ':st:' .. acct .. ':' .. res)
end
redis.call('DEL', KEYS[1])
redis.call('HDEL', KEYS[2], acct)
local q = prefix .. ':tq:'
for _, tid in ipairs(redis.call('ZRANGE', KEYS[3], 0, -1)) do
  local tk = prefix .. ':t:' .. tid
  local dd = redis.call('HGET', tk, 'dd')
  if dd and redis.call('GET', q .. 'dd:' .. dd) == tid then
    redis.call('DEL', q .. 'dd:' .. dd)
  end
  redis.call('DEL', tk)
  for _, set in ipairs({'ready', 'delayed', 'running', 'done', 'all'}) do
    redis.call('ZREM', q .. set, tid)
  end
end
redis.call('DEL', KEYS[3])
return n
"#,
    )
});

/// KEYS: index or tag sets. ARGV: prefix, check ('1': also drop members whose
/// entry is gone before its time, e.g. evicted).
/// Drops members whose entry Redis has expired, by Redis's clock.
pub(crate) static MAINTAIN: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local prefix, check = ARGV[1], ARGV[2] == '1'
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local n = 0
for _, k in ipairs(KEYS) do
  n = n + redis.call('ZREMRANGEBYSCORE', k, '-inf', '(' .. string.format('%.0f', now))
  if check then
    for _, id in ipairs(redis.call('ZRANGE', k, 0, -1)) do
      if redis.call('EXISTS', prefix .. ':e:' .. id) == 0 then
        n = n + redis.call('ZREM', k, id)
      end
    end
  end
end
return n
"#,
    )
});

/// KEYS: index sets. ARGV: prefix.
/// Returns `{entries, stored bytes, raw bytes}` per set, flattened.
pub(crate) static SIZES: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local prefix = ARGV[1]
local out = {}
for _, k in ipairs(KEYS) do
  local n, sb, rb = 0, 0, 0
  for _, id in ipairs(redis.call('ZRANGE', k, 0, -1)) do
    local v = redis.call('HMGET', prefix .. ':e:' .. id, 'sb', 'rb')
    if v[1] then
      n = n + 1
      sb = sb + (tonumber(v[1]) or 0)
      rb = rb + (tonumber(v[2]) or 0)
    end
  end
  table.insert(out, n)
  table.insert(out, sb)
  table.insert(out, rb)
end
return out
"#,
    )
});

/// KEYS: lock. ARGV: token. Deletes the lock only if it still holds the token.
pub(crate) static UNLOCK: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"#,
    )
});

/// Helpers prepended to the task scripts.
const TASK_HELPERS: &str = r#"
local function num(n) return string.format('%.0f', n) end
local function ready_score(prio, seq) return num(tonumber(prio) * 1e12 + tonumber(seq)) end
local function clear_dedupe(q, tk, tid)
  local dd = redis.call('HGET', tk, 'dd')
  if dd and redis.call('GET', q .. 'dd:' .. dd) == tid then
    redis.call('DEL', q .. 'dd:' .. dd)
  end
end
"#;

fn task_script(body: &str) -> Script {
    Script::new(&format!("{TASK_HELPERS}\n{body}"))
}

/// KEYS: dedupe key. ARGV: prefix, new id, now, priority, acct, sealed
/// account, operation, sealed params, max attempts, dedupe name.
/// Returns `{task id, 1 if deduplicated else 0}`.
pub(crate) static ENQUEUE: LazyLock<Script> = LazyLock::new(|| {
    task_script(
        r#"
local prefix, id, now, prio = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local q = prefix .. ':tq:'
local existing = redis.call('GET', KEYS[1])
if existing then
  local tk = prefix .. ':t:' .. existing
  local v = redis.call('HMGET', tk, 'st', 'pr', 'sq')
  if v[1] == 'queued' or v[1] == 'running' then
    if prio < tonumber(v[2]) then
      redis.call('HSET', tk, 'pr', num(prio))
      if redis.call('ZSCORE', q .. 'ready', existing) then
        redis.call('ZADD', q .. 'ready', ready_score(prio, v[3]), existing)
      end
    end
    return {existing, 1}
  end
end
local seq = redis.call('INCR', q .. 'seq')
local tk = prefix .. ':t:' .. id
redis.call('HSET', tk, 'a', ARGV[5], 'ae', ARGV[6], 'op', ARGV[7], 'pj', ARGV[8],
  'st', 'queued', 'pr', num(prio), 'at', 0, 'ma', ARGV[9], 'c', now, 'ra', now,
  'dd', ARGV[10], 'sq', seq)
redis.call('ZADD', q .. 'ready', ready_score(prio, seq), id)
redis.call('ZADD', q .. 'all', seq, id)
redis.call('ZADD', q .. 'acct:' .. ARGV[5], seq, id)
redis.call('SET', KEYS[1], id)
return {id, 0}
"#,
    )
});

/// ARGV: prefix, now. Moves due delayed tasks to the ready set, then claims
/// the first ready one. Returns `{id, field, value, …}` or nil.
pub(crate) static CLAIM: LazyLock<Script> = LazyLock::new(|| {
    task_script(
        r#"
local prefix, now = ARGV[1], tonumber(ARGV[2])
local q = prefix .. ':tq:'
for _, id in ipairs(redis.call('ZRANGEBYSCORE', q .. 'delayed', '-inf', ARGV[2], 'LIMIT', 0, 1000)) do
  redis.call('ZREM', q .. 'delayed', id)
  local v = redis.call('HMGET', prefix .. ':t:' .. id, 'st', 'pr', 'sq')
  if v[1] == 'queued' then
    redis.call('ZADD', q .. 'ready', ready_score(v[2], v[3]), id)
  end
end
while true do
  local top = redis.call('ZRANGE', q .. 'ready', 0, 0)
  if #top == 0 then return false end
  local id = top[1]
  redis.call('ZREM', q .. 'ready', id)
  local tk = prefix .. ':t:' .. id
  local v = redis.call('HMGET', tk, 'st', 'ra')
  if v[1] == 'queued' then
    if tonumber(v[2] or '0') > now then
      redis.call('ZADD', q .. 'delayed', v[2], id)
    else
      redis.call('HSET', tk, 'st', 'running', 'sa', ARGV[2])
      redis.call('HINCRBY', tk, 'at', 1)
      redis.call('ZADD', q .. 'running', ARGV[2], id)
      local out = redis.call('HGETALL', tk)
      table.insert(out, 1, id)
      return out
    end
  end
end
"#,
    )
});

/// ARGV: prefix, id, now, sealed result. Returns 1, or 0 for no such task.
pub(crate) static COMPLETE: LazyLock<Script> = LazyLock::new(|| {
    task_script(
        r#"
local prefix, id, now = ARGV[1], ARGV[2], ARGV[3]
local q = prefix .. ':tq:'
local tk = prefix .. ':t:' .. id
if redis.call('EXISTS', tk) == 0 then return 0 end
redis.call('HSET', tk, 'st', 'completed', 'fa', now, 'rs', ARGV[4])
redis.call('HDEL', tk, 'er')
redis.call('ZREM', q .. 'ready', id)
redis.call('ZREM', q .. 'delayed', id)
redis.call('ZREM', q .. 'running', id)
redis.call('ZADD', q .. 'done', now, id)
clear_dedupe(q, tk, id)
return 1
"#,
    )
});

/// ARGV: prefix, id, now, run_after, sealed error.
/// Returns the new status, or nil for no such task.
pub(crate) static FAIL: LazyLock<Script> = LazyLock::new(|| {
    task_script(
        r#"
local prefix, id, now, run_after = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local q = prefix .. ':tq:'
local tk = prefix .. ':t:' .. id
if redis.call('EXISTS', tk) == 0 then return false end
local v = redis.call('HMGET', tk, 'at', 'ma', 'pr', 'sq')
redis.call('ZREM', q .. 'running', id)
redis.call('ZREM', q .. 'ready', id)
redis.call('ZREM', q .. 'delayed', id)
if tonumber(v[1] or '0') < tonumber(v[2] or '1') then
  redis.call('HSET', tk, 'st', 'queued', 'ra', run_after, 'er', ARGV[5])
  redis.call('HDEL', tk, 'fa')
  redis.call('ZREM', q .. 'done', id)
  if tonumber(run_after) <= tonumber(now) then
    redis.call('ZADD', q .. 'ready', ready_score(v[3], v[4]), id)
  else
    redis.call('ZADD', q .. 'delayed', run_after, id)
  end
  return 'queued'
end
redis.call('HSET', tk, 'st', 'failed', 'ra', run_after, 'er', ARGV[5], 'fa', now)
redis.call('ZADD', q .. 'done', now, id)
clear_dedupe(q, tk, id)
return 'failed'
"#,
    )
});

/// ARGV: prefix, now, cutoff, then pairs of id and a sealed "interrupted"
/// error for it. Puts running tasks started at or before `cutoff` back in
/// the queue (or fails them when out of attempts). Returns how many.
pub(crate) static REAP: LazyLock<Script> = LazyLock::new(|| {
    task_script(
        r#"
local prefix, now, cutoff = ARGV[1], ARGV[2], tonumber(ARGV[3])
local q = prefix .. ':tq:'
local n = 0
for i = 4, #ARGV, 2 do
  local id = ARGV[i]
  local tk = prefix .. ':t:' .. id
  local v = redis.call('HMGET', tk, 'st', 'sa', 'at', 'ma', 'er', 'pr', 'sq')
  if v[1] ~= 'running' then
    redis.call('ZREM', q .. 'running', id)
  elseif tonumber(v[2] or '0') <= cutoff then
    redis.call('ZREM', q .. 'running', id)
    if not v[5] then redis.call('HSET', tk, 'er', ARGV[i + 1]) end
    if tonumber(v[3] or '0') < tonumber(v[4] or '1') then
      redis.call('HSET', tk, 'st', 'queued')
      redis.call('ZADD', q .. 'ready', ready_score(v[6], v[7]), id)
    else
      redis.call('HSET', tk, 'st', 'failed', 'fa', now)
      redis.call('ZADD', q .. 'done', now, id)
      clear_dedupe(q, tk, id)
    end
    n = n + 1
  end
end
return n
"#,
    )
});

/// ARGV: prefix, keep. Deletes all but the newest `keep` finished tasks.
/// Returns how many.
pub(crate) static PRUNE: LazyLock<Script> = LazyLock::new(|| {
    task_script(
        r#"
local prefix, keep = ARGV[1], tonumber(ARGV[2])
local q = prefix .. ':tq:'
local n = 0
for _, id in ipairs(redis.call('ZRANGE', q .. 'done', 0, -(keep + 1))) do
  local tk = prefix .. ':t:' .. id
  local v = redis.call('HMGET', tk, 'st', 'a')
  redis.call('ZREM', q .. 'done', id)
  if v[1] == 'completed' or v[1] == 'failed' or v[1] == 'cancelled' then
    clear_dedupe(q, tk, id)
    redis.call('DEL', tk)
    redis.call('ZREM', q .. 'all', id)
    redis.call('ZREM', q .. 'acct:' .. v[2], id)
    n = n + 1
  elseif not v[1] then
    redis.call('ZREM', q .. 'all', id)
  end
end
return n
"#,
    )
});
