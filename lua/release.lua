#!lua
--[[
name: release
version: 1
purpose: A worker gives leases back without running them (graceful shutdown past its grace
  period): token-checked; each task returns to the front of its priority in pending and the
  attempt is not counted.
keys:
  1-18: the queue keyset
touches: meta(rw) tasks(r) pending(rw) leased(w) lease(rw) winfl(w) events(w) groups(rw)
argv:
  1: worker (string) — the worker's id
  then pairs: id, token — 1..1000 pairs
reply: flat array, one status per pair: 1 = released, 0 = stale (nothing changed)
errors:
  BADARG: an argument is out of range or the pairs are incomplete; nothing was written
  VERSION: the queue holds another data schema version
  NOPERM: the Redis user lacks Baton's worker ACL rules; nothing was written
bound: O(n log N) for n <= 1000 pairs
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

local worker = id_arg(ARGV[1], 'worker')
local np = groups_arg(1, 2, 1, MAX_BATCH, 'id/token pairs after worker')
require_worker()
check_schema()

local ids = {}
for i = 1, np do ids[i] = ARGV[2 * i] end
local held = held_leases(worker, ids, 1, 2, true)
local recs = redis.call('HMGET', K_TASKS, unpack(ids))
local was_empty = redis.call('ZCARD', K_PENDING) == 0
local gone, reply, items = {}, {}, {}
for i, id in ipairs(ids) do
  local t = held[i] and recs[i] and parse_record(recs[i])
  if t then
    gone[#gone + 1] = id
    -- sequence 0: ahead of every task of the same priority (with aging: waiting since it was
    -- created, so it keeps its age)
    pend(fmt(pending_score(t.prio, 0, t.created)), id)
    reply[i] = 1
    ev_add(items, id, t.used)
  else
    reply[i] = 0
  end
end
if #gone > 0 then
  end_leases(worker, gone)
  emit('released', worker, items)
end
wake_pending(was_empty and #gone > 0)
return reply
