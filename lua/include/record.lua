-- include/record.lua — the task record, and the pending order.
--@include keys
--@include schema

-- Record: "used|base|strays|expires_ms|kind|prio|max_attempts|backoff|base_ms|cap_ms|jitter_pct|timeout_ms|result_ttl_ms|created_ms|payload"
-- `used` = runs that ended without success (failed, lease expired, or leased and never started)
-- over the task's whole life: it never goes back, so run `used + 1` is a number no other run of
-- the task had. `base` = runs not charged as attempts: `used` at the last dead-letter requeue,
-- plus every stray since. The current attempt is `used - base + 1`, and `max_attempts` bounds
-- that. `strays` = leases that expired before their run started (the worker died between claim
-- and handler start): not charged, at most MAX_STRAYS in a task's life — past that a stray is
-- charged like any expired lease, so a task that kills its worker before the start mark can
-- still never loop forever. The counters lead the record so the rare paths (fail, reclaim) can
-- rewrite them without touching the rest, and the hot path (claim) never parses the record at
-- all: the client does. `expires_ms` (Redis ms; 0 = never) is the time after which no run of
-- the task starts: the scripts that hand tasks out (claim, take) read it right after the
-- counters and send an expired task to the dead-letter set instead (`lapse_tasks`).
local REC_PATTERN = '^(%d+)|(%d+)|(%d+)|(%d+)|([^|]*)|(%-?%d+)|(%d+)|(%a)|(%d+)|(%d+)|(%d+)|(%d+)|(%d+)|(%d+)|()'
local MAX_STRAYS = 3
local function parse_record(rec)
  local used, base, strays, ex, kind, prio, ma, bo, bb, cap, jit, to, rt, ca, pos = string.match(rec, REC_PATTERN)
  if used == nil then return nil end
  return {used = tonumber(used), base = tonumber(base), strays = tonumber(strays), expires = tonumber(ex), kind = kind,
    prio = tonumber(prio), max_attempts = tonumber(ma), backoff = bo, base_ms = tonumber(bb),
    cap = tonumber(cap), jitter = tonumber(jit), timeout = tonumber(to), result_ttl = tonumber(rt),
    created = tonumber(ca), payload_pos = pos}
end

-- The record from its third '|' on (expires_ms onwards).
local function rec_tail(rec)
  local p = string.find(rec, '|', 1, true)
  p = string.find(rec, '|', p + 1, true)
  return string.sub(rec, (string.find(rec, '|', p + 1, true)))
end

-- The record with its `used` count replaced.
local function with_used(rec, used)
  return used .. string.sub(rec, (string.find(rec, '|', 1, true)))
end

-- The record of a requeued task: a fresh attempt budget starting after the runs it had.
local function with_fresh_attempts(rec, t)
  return t.used .. '|' .. t.used .. '|' .. t.strays .. rec_tail(rec)
end

-- The record after a stray: a run number used up, no attempt charged.
local function with_stray(rec, t)
  return (t.used + 1) .. '|' .. (t.base + 1) .. '|' .. (t.strays + 1) .. rec_tail(rec)
end

-- When no run of the task may start any more (ms; 0 = never), read from the head of a record
-- without parsing the rest.
local function rec_expires(rec)
  local p = string.find(rec, '|', 1, true)
  p = string.find(rec, '|', p + 1, true)
  p = string.find(rec, '|', p + 1, true)
  return tonumber(string.sub(rec, p + 1, string.find(rec, '|', p + 1, true) - 1)) or 0
end

-- Runs ended so far, read from the head of a record (the hot paths never parse the rest); the
-- run a claim starts is this + 1.
local function rec_used(rec)
  return tonumber(string.sub(rec, 1, (string.find(rec, '|', 1, true) or 1) - 1)) or 0
end

-- Backoff in ms for a task record after `attempt` failed attempts; r in [0,1) comes from the
-- caller (math.random is deterministic inside Redis).
local function backoff_ms(t, attempt, r)
  local d
  if t.backoff == 'f' then
    d = t.base_ms
  else
    d = t.base_ms * (2 ^ math.min(attempt - 1, 60))
    if d > t.cap then d = t.cap end
  end
  return d - math.floor(d * t.jitter / 100 * r)
end

-- Pending score, strict priority (aging off) = (PRIO_MAX - priority) * SEQ_SPAN + (seq mod
-- SEQ_SPAN): higher priority first, FIFO within a priority. 2001 bands * 2^42 stays below 2^53
-- (exact in a double).
--
-- With priority aging (AGING ms per priority step, the queue's `aging`), the score is the time
-- the task started waiting, moved earlier by AGING per priority step:
-- (since - AGING_EPOCH - priority * AGING) * AGING_SEQ + (seq mod AGING_SEQ). A task of priority
-- p waiting since t0 is ahead of every task of priority p + k that started waiting after
-- t0 + k * AGING: under any flood of higher-priority work its wait is bounded, at no cost per
-- claim (the order is in the score; nothing is rescored). Within one millisecond the sequence
-- keeps FIFO (wrapping after 1024). Magnitudes: 2^41 ms (69 years from the epoch) plus
-- 1000 * 86400000 ms (the largest aging) times 1024 stays below 2^53.
local PRIO_MAX = 1000
local SEQ_SPAN = 4398046511104
local AGING_EPOCH = 1767225600000 -- 2026-01-01T00:00:00Z
local AGING_SEQ = 1024

local function pending_score(prio, seq, since)
  if AGING > 0 then
    return (since - AGING_EPOCH - prio * AGING) * AGING_SEQ + (seq % AGING_SEQ)
  end
  return (PRIO_MAX - prio) * SEQ_SPAN + (seq % SEQ_SPAN)
end

-- Next pending scores: one HINCRBY for a whole batch. Returns the first sequence number.
local function take_seq(n)
  return redis.call('HINCRBY', K_META, 'seq', n) - n + 1
end
