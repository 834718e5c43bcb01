#!lua
--[[
name: claim
version: 3
purpose: A worker claims up to n pending tasks, highest priority first (FIFO within a priority),
  each under a lease (worker, fencing token, deadline). Claim cost is independent of queue depth
  and the record is handed out as stored (the client parses it).
keys:
  1-18: the queue keyset
touches: meta(rw) tasks(rw) pending(rw) leased(rw) lease(w) dead(w) cancelled(w) errors(w) winfl(w)
  wstat(w) events(w) groups(rw) wf(rw)
argv:
  1: worker (string, 1-128 of [A-Za-z0-9-_:.]) — the claiming worker's id
  2: n (int, 1..1000) — how many tasks at most
  3: lease_ms (int, 1..86400000) — lease duration; the deadline is Redis TIME + lease_ms
  4: dead_ttl_ms (int, 1..MAX_MS) — how long a task that expired before it could run (its
    expires_ms passed) is kept in the dead-letter set; such a task is never handed out
reply: flat array, 4 entries per claimed task: id, token (string, unique and increasing per queue),
  deadline_ms (int), record (string "used|base|strays|expires_ms|kind|prio|max_attempts|backoff|base_ms|
  cap_ms|jitter_pct|timeout_ms|result_ttl_ms|created_ms|payload"; this is run used + 1 of the task
  and attempt used - base + 1 of max_attempts: base counts the runs not charged — used at the
  last requeue from the dead-letter set, plus strays). Once a handler has started, the worker
  says so with the start script, or an expiry of this lease is not charged (a stray).
  Empty when nothing is pending or the queue is paused. On a queue with a rate limit or a
  concurrency cap (configure) fewer than n may be handed out while tasks are pending; the reply
  then ends with one more value, the wait (int): ms until the rate admits more, or -1 when the
  concurrency cap is full (a `p` on the wake channel follows when a lease ends). Its length is
  then 4k + 1.
errors:
  BADARG: an argument is out of range; nothing was written
  VERSION: the queue holds another data schema version
  NOPERM: the Redis user lacks Baton's worker ACL rules; nothing was written
bound: O(n log N) for n <= 1000
  measured worst (cargo bench --bench worst_case, n = 1000, events on, 2-core VM): about 8-11 ms per call
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
--@include limits
--@include fairpop
--@include claiming

local worker = id_arg(ARGV[1], 'worker')
local n = int_arg(ARGV[2], 'n', 1, MAX_BATCH)
local lease_ms = int_arg(ARGV[3], 'lease_ms', 1, 86400000)
local dead_ttl = int_arg(ARGV[4], 'dead_ttl_ms', 1, MAX_MS)
require_worker()
local meta = check_schema('paused')
if meta[2] == '1' then return {} end

return claim_pending(worker, n, lease_ms, dead_ttl)
