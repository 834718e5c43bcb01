#!lua
--[[
name: fail
version: 1
purpose: Report failed attempts (a batch): token-checked; each task is retried after a backoff
  computed here from its own policy, or moved to the dead-letter set with its last error when it
  has no attempts left or the failure is final.
keys:
  1-18: the queue keyset
touches: meta(rw) tasks(rw) pending(rw) delayed(rw) leased(w) lease(rw) dead(w) cancelled(w)
  errors(w) winfl(w) wstat(w) events(w) groups(rw) wf(rw)
argv:
  1: worker (string) — the worker's id
  2: dead_ttl_ms (int, 1..MAX_MS) — how long a dead task is kept before the janitor drops it
  3: busy_ms (int, 0..MAX_MS) — run time of these attempts' handlers, summed (worker statistics)
  then groups of 4: id, token, error (string, cut to 8 KiB), mode (string):
    "retry" = retry while attempts are left; "final" = dead now;
    "r:<x>" where x is a random number in [0,1) from the caller = retry, jitter drawn from x
reply: flat array, one status per group, in order: 1 = retry scheduled (delayed, or pending when the
  backoff is 0), 2 = dead, 0 = stale (lease not held by this worker and token; nothing changed)
errors:
  BADARG: an argument is out of range or the groups are incomplete; nothing was written
  VERSION: the queue holds another data schema version
  NOPERM: the Redis user lacks Baton's worker ACL rules; nothing was written
bound: O(n log N) for n <= 1000 groups
  measured worst (cargo bench --bench worst_case, n = 1000, events on, 2-core VM): about 22-34 ms (every task retried) per call
]]
--@include args
--@include keys
--@include schema
--@include record
--@include notify
--@include registry
--@include fair
--@include lease
--@include events
--@include outbox
--@include flows
--@include deps

local worker = id_arg(ARGV[1], 'worker')
local dead_ttl = int_arg(ARGV[2], 'dead_ttl_ms', 1, MAX_MS)
local busy = int_arg(ARGV[3], 'busy_ms', 0, MAX_MS)
local ng = groups_arg(3, 4, 1, MAX_BATCH, 'id/token/error/mode groups after worker, dead_ttl_ms and busy_ms')
local ids, rs, retry = {}, {}, {}
for i = 1, ng do
  local b = 3 + (i - 1) * 4
  ids[i] = ARGV[b + 1]
  local mode = ARGV[b + 4]
  if mode == 'final' then
    retry[i], rs[i] = false, 0
  elseif mode == 'retry' then
    retry[i], rs[i] = true, 0.5
  else
    local x = tonumber(string.match(mode, '^r:(.+)$') or '')
    if x == nil or x ~= x or x < 0 or x >= 1 then
      bail('BADARG', 'mode must be "retry", "final" or "r:<x>" with 0 <= x < 1, got ' .. tostring(mode))
    end
    retry[i], rs[i] = true, x
  end
end
require_worker()
check_schema()

local held = held_leases(worker, ids, 1, 4, true)
local recs = redis.call('HMGET', K_TASKS, unpack(ids))
local now = now_ms()
local was_empty = redis.call('ZCARD', K_PENDING) == 0
local gone, final, reply = {}, {}, {}
local ev_failed, ev_retried, ev_dead, n_retry = {}, {}, {}, 0
local to_pending = 0
local seq = nil
for i, id in ipairs(ids) do
  local b = 3 + (i - 1) * 4
  local t = held[i] and recs[i] and parse_record(recs[i])
  if t then
    gone[#gone + 1] = id
    local run = t.used + 1
    local attempt = run - t.base
    ev_add(ev_failed, id, run)
    redis.call('HSET', K_TASKS, id, with_used(recs[i], run))
    redis.call('HSET', K_ERRORS, id, run .. '|' .. fmt(now) .. '|' .. string.sub(ARGV[b + 3], 1, 8192))
    if retry[i] and attempt < t.max_attempts then
      local d = backoff_ms(t, attempt, rs[i])
      if d > 0 then
        wake_delayed_if_first(now + d)
        redis.call('ZADD', K_DELAYED, fmt(now + d), id)
      else
        seq = seq or take_seq(ng)
        pend(fmt(pending_score(t.prio, seq + i - 1, now)), id)
        to_pending = to_pending + 1
      end
      reply[i] = 1
      ev_add(ev_retried, id, run)
      n_retry = n_retry + 1
    else
      redis.call('ZADD', K_DEAD, fmt(now + dead_ttl), id)
      final[#final + 1] = id
      reply[i] = 2
      ev_add(ev_dead, id, run)
    end
  else
    reply[i] = 0
  end
end
if #gone > 0 then
  end_leases(worker, gone)
  redis.call('HINCRBY', K_META, 'n_failed', #gone)
  stat_add(worker, 'f', #gone)
  stat_add(worker, 'b', busy)
  if #final > 0 then redis.call('HINCRBY', K_META, 'n_dead', #final) end
  if n_retry > 0 then redis.call('HINCRBY', K_META, 'n_retry', n_retry) end
  emit('failed', worker, ev_failed, now)
  emit('retried', worker, ev_retried, now)
  emit('dead', worker, ev_dead, now)
end
wake_pending(was_empty and to_pending > 0)
task_final(final, 'dead', now)
return reply
