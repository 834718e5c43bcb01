-- include/common.lua — shared by every Baton script (inlined at load time by the Rust loader
-- and by `baton scripts dump`, so other languages get flat scripts).
--
-- The queue keyset: every script takes the same 17 queue keys first, all sharing the queue's
-- hash tag `{queue}`, so a queue lives in one cluster slot. A script declares every key it
-- touches; extra per-call keys (idempotency keys) follow the keyset.
local K_META, K_TASKS, K_PENDING, K_DELAYED, K_LEASED, K_LEASE =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local K_DONE, K_DEAD, K_CANCELLED, K_RESULTS, K_ERRORS, K_WORKERS, K_WBEAT =
  KEYS[7], KEYS[8], KEYS[9], KEYS[10], KEYS[11], KEYS[12], KEYS[13]
local K_ASSIGNED, K_WINFL, K_WSTAT, K_EVENTS = KEYS[14], KEYS[15], KEYS[16], KEYS[17]
local NKEYS = 17

-- Data schema version of the queue (stored in meta field `v`). Bump on any change of the key
-- layout, record format or field meaning; scripts refuse a queue with another version.
local SCHEMA = '1'
local MAX_BATCH = 1000
-- Pending score = (PRIO_MAX - priority) * SEQ_SPAN + (seq mod SEQ_SPAN): higher priority first,
-- FIFO within a priority. 2001 bands * 2^42 stays below 2^53 (exact in a double).
local PRIO_MAX = 1000
local SEQ_SPAN = 4398046511104

-- Raise a named error. Every script validates all of its input before its first write, so a
-- raised error leaves no partial write.
local function bail(code, msg)
  error({err = code .. ' ' .. msg})
end

if #KEYS < NKEYS then
  bail('BADARG', 'expected the 17 queue keys first, got ' .. #KEYS .. ' keys')
end

-- Numbers are always formatted by hand: Lua's `..` turns a number into a string with "%.14g",
-- which would round large scores and timestamps (redis.call itself uses "%.17g").
local function fmt(n)
  return string.format('%.0f', n)
end

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Parse an integer ARGV value within [lo, hi] or raise BADARG naming the argument.
local function int_arg(v, name, lo, hi)
  local n = tonumber(v)
  if n == nil or n ~= math.floor(n) or n < lo or n > hi then
    bail('BADARG', name .. ' must be an integer in [' .. fmt(lo) .. ', ' .. fmt(hi) .. '], got ' .. tostring(v))
  end
  return n
end

local function id_arg(v, name)
  if type(v) ~= 'string' or #v == 0 or #v > 128 or string.find(v, '[^%w%-_:%.]') then
    bail('BADARG', name .. ' must be 1-128 characters of [A-Za-z0-9-_:.], got ' .. tostring(v))
  end
  return v
end

-- Lifecycle events: stream length cap (meta field `ev`, set by the configure script; 0 = events
-- off). Read by check_schema in the same HMGET, so events cost no extra meta read.
local EVENTS_DEFAULT_MAX = 10000
local EV_MAX = EVENTS_DEFAULT_MAX

-- ACL roles (docs/operations.md): the producer rules lack the commands only worker-side
-- transitions use (ZPOPMIN, ZREM, HDEL...). Every script but enqueue and the read-only ones
-- checks up front that the caller may run ZPOPMIN, so a producer gets NOPERM before any write —
-- never a half-done transition (Redis checks each command inside a script against the
-- caller's ACL, and does not roll back). EVALSHA itself needs access to every declared key, so
-- roles differ by command, not by key.
local function require_worker()
  if not redis.acl_check_cmd('ZPOPMIN', K_PENDING, '1') then
    bail('NOPERM', 'this Redis user may not run worker-side transitions on ' .. K_PENDING ..
      ' (producer rules?); run workers, schedulers and operator commands as a user with the worker rules')
  end
end

-- Check the queue's schema version. `create` (enqueue only) stamps a new queue.
-- Returns the meta fields asked for after `v` (e.g. `paused`).
local function check_schema(create, ...)
  local fields = {'v', ...}
  fields[#fields + 1] = 'ev'
  local got = redis.call('HMGET', K_META, unpack(fields))
  EV_MAX = tonumber(got[#fields]) or EVENTS_DEFAULT_MAX
  local v = got[1]
  if v == false then
    if create then redis.call('HSET', K_META, 'v', SCHEMA) end
  elseif v ~= SCHEMA then
    bail('VERSION', 'queue ' .. K_META .. ' has data schema v' .. v .. ' but these scripts are v' .. SCHEMA ..
      '; run a baton release whose scripts match the queue (see docs/contract.md)')
  end
  return got
end

-- Record: "used|kind|prio|max_attempts|backoff|base_ms|cap_ms|jitter_pct|timeout_ms|result_ttl_ms|created_ms|payload"
-- `used` = attempts that ended without success (failed or lease expired). It leads the record so
-- the rare paths (fail, reclaim, requeue) can rewrite it without touching the rest, and the hot
-- path (claim) never parses the record at all: the client does.
local REC_PATTERN = '^(%d+)|([^|]*)|(%-?%d+)|(%d+)|(%a)|(%d+)|(%d+)|(%d+)|(%d+)|(%d+)|(%d+)|()'
local function parse_record(rec)
  local used, kind, prio, ma, bo, base, cap, jit, to, rt, ca, pos = string.match(rec, REC_PATTERN)
  if used == nil then return nil end
  return {used = tonumber(used), kind = kind, prio = tonumber(prio), max_attempts = tonumber(ma),
    backoff = bo, base = tonumber(base), cap = tonumber(cap), jitter = tonumber(jit),
    timeout = tonumber(to), result_ttl = tonumber(rt), created = tonumber(ca), payload_pos = pos}
end

-- The record with its `used` count replaced.
local function with_used(rec, used)
  return used .. string.sub(rec, (string.find(rec, '|', 1, true)))
end

-- Next pending scores: one HINCRBY for a whole batch. Returns the first sequence number.
local function take_seq(n)
  return redis.call('HINCRBY', K_META, 'seq', n) - n + 1
end

local function pending_score(prio, seq)
  return (PRIO_MAX - prio) * SEQ_SPAN + (seq % SEQ_SPAN)
end

-- Pub/sub channels are derived from the meta key (`<prefix>:{q}:meta` -> `<prefix>:{q}:wake`).
local CHAN_BASE = string.sub(K_META, 1, -5)
local CHAN_WAKE = CHAN_BASE .. 'wake'
local CHAN_FIN = CHAN_BASE .. 'fin'
local CHAN_FREE = CHAN_BASE .. 'free'
local CHAN_EVENTS = CHAN_BASE .. 'events'

-- Wake sleeping workers when pending goes from empty to non-empty ('p'), or the maintenance
-- loop when the earliest delayed task changed ('d'). Workers stay subscribed, so a wake sent
-- after their last empty claim is never missed.
local function wake_pending(was_empty)
  if was_empty then redis.call('PUBLISH', CHAN_WAKE, 'p') end
end

local function wake_delayed_if_first(run_at)
  local first = redis.call('ZRANGE', K_DELAYED, 0, 0, 'WITHSCORES')
  if first[2] == nil or tonumber(first[2]) >= run_at then
    redis.call('PUBLISH', CHAN_WAKE, 'd')
  end
end

-- Tell result waiters that these tasks reached a final state (done, dead, cancelled).
local function notify_final(ids)
  if #ids > 0 then redis.call('PUBLISH', CHAN_FIN, table.concat(ids, ',')) end
end

-- Backoff in ms for a task record after `attempt` failed attempts; r in [0,1) comes from the
-- caller (math.random is deterministic inside Redis).
local function backoff_ms(t, attempt, r)
  local d
  if t.backoff == 'f' then
    d = t.base
  else
    d = t.base * (2 ^ math.min(attempt - 1, 60))
    if d > t.cap then d = t.cap end
  end
  return d - math.floor(d * t.jitter / 100 * r)
end

-- The dead-letter selection shared by requeue and purge: ARGV = "ids", id... or "oldest", limit.
-- Validates, checks the schema, and returns the ids (for "ids": as given, up to 1000).
local function select_dead()
  local mode = ARGV[1]
  if mode == 'oldest' then
    local limit = int_arg(ARGV[2], 'limit', 1, MAX_BATCH)
    check_schema(false)
    return redis.call('ZRANGE', K_DEAD, 0, limit - 1)
  elseif mode == 'ids' then
    if #ARGV < 2 or #ARGV > MAX_BATCH + 1 then
      bail('BADARG', 'expected 1..' .. MAX_BATCH .. ' task ids after "ids", got ' .. (#ARGV - 1))
    end
    check_schema(false)
    local ids = {}
    for i = 2, #ARGV do ids[#ids + 1] = ARGV[i] end
    return ids
  end
  bail('BADARG', 'mode must be "ids" or "oldest", got ' .. tostring(mode))
end

-- Drop finished tasks now, with everything kept about them.
local function drop_tasks(ids)
  if #ids > 0 then
    redis.call('HDEL', K_TASKS, unpack(ids))
    redis.call('HDEL', K_RESULTS, unpack(ids))
    redis.call('HDEL', K_ERRORS, unpack(ids))
  end
end

-- The worker registry's counters, kept by the same scripts that move leases, so they never
-- drift from the real leases: winfl = leases held (in flight), wstat = "<worker>:a" assigned,
-- ":c" completed, ":f" failed attempts, ":b" busy ms.
local function inflight_add(worker, n)
  if n ~= 0 then redis.call('HINCRBY', K_WINFL, worker, n) end
end

local function stat_add(worker, field, n)
  if n ~= 0 then redis.call('HINCRBY', K_WSTAT, worker .. ':' .. field, n) end
end

-- Capacity was freed (a lease ended): push dispatchers may assign more.
local function signal_free()
  redis.call('PUBLISH', CHAN_FREE, '1')
end

-- End leases `worker` held on `ids` (completed, failed, released, handed back): drop them, lower
-- its in-flight counter, and tell push dispatchers that capacity was freed.
local function end_leases(worker, ids)
  redis.call('HDEL', K_LEASE, unpack(ids))
  redis.call('ZREM', K_LEASED, unpack(ids))
  inflight_add(worker, -#ids)
  signal_free()
end

-- Lease value: "token|worker". Callers prove they hold a lease by sending both.
local function lease_worker(v)
  return string.match(v, '|(.*)$')
end

-- Emit one lifecycle event for a call: XADD to the capped events stream (for listeners that must
-- not miss any) and PUBLISH on the events channel (live listeners). One event per call and type,
-- listing every task it concerns as "id:attempt", so a batch of 1000 costs one XADD, not 1000.
-- `items` is built with ev_add.
-- Stream entry fields: e (type), t (Redis time ms), w (worker or ''), x ("id:attempt,...").
-- Channel message: "<stream id>|<type>|<t>|<worker>|<tasks>".
local function emit(etype, worker, items, now)
  if #items == 0 or EV_MAX <= 0 then return end
  local t = fmt(now or now_ms())
  items[#items] = nil -- the trailing ','
  local x = table.concat(items)
  local sid = redis.call('XADD', K_EVENTS, 'MAXLEN', '~', EV_MAX, '*', 'e', etype, 't', t, 'w', worker, 'x', x)
  redis.call('PUBLISH', CHAN_EVENTS, sid .. '|' .. etype .. '|' .. t .. '|' .. worker .. '|' .. x)
end

-- Attempts used so far, read from the head of a record (the hot paths never parse the rest).
local function rec_used(rec)
  return tonumber(string.sub(rec, 1, (string.find(rec, '|', 1, true) or 1) - 1)) or 0
end

-- Add "id:attempt," to an event's item list as separate parts, joined once by emit: no
-- intermediate string is created (and interned) per task.
local function ev_add(items, id, attempt)
  local n = #items
  items[n + 1] = id
  items[n + 2] = ':'
  items[n + 3] = attempt
  items[n + 4] = ','
end

-- Events are wanted (a caller may skip building the item list when they are off).
local function events_on()
  return EV_MAX > 0
end
