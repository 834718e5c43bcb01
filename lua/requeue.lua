#!lua
--[[
name: requeue
version: 1
purpose: Move dead tasks back to pending with fresh attempts (the dead-letter "retry" button):
  given ids, or the oldest ones.
keys:
  1-18: the queue keyset
touches: meta(rw) tasks(rw) pending(rw) dead(rw) events(w) groups(rw)
argv:
  1: mode (string, "ids" or "oldest")
  then target values: with "ids", 1..1000 task ids; with "oldest", one limit (int, 1..1000) —
     the oldest dead tasks are requeued
reply: flat array, one per task considered: 1 = requeued, 0 = not in the dead-letter set (nothing
  changed). In "oldest" mode, one 1 per task requeued.
errors:
  BADARG: an argument is out of range; nothing was written
  VERSION: the queue holds another data schema version
  NOPERM: the Redis user lacks Baton's worker ACL rules; nothing was written
bound: O(n log N) for n <= 1000
]]
--@include args
--@include keys
--@include schema
--@include record
--@include notify
--@include events
--@include deadletter
--@include fair

require_worker()
local ids = select_dead()

local was_empty = redis.call('ZCARD', K_PENDING) == 0
local seq = take_seq(math.max(#ids, 1))
local since = AGING > 0 and now_ms() or 0 -- a requeued task starts waiting now
local reply, items = {}, {}
local moved = 0
for i, id in ipairs(ids) do
  local rec = redis.call('HGET', K_TASKS, id)
  local t = rec and parse_record(rec)
  if not t then
    redis.call('ZREM', K_DEAD, id) -- its record is gone: nothing to requeue, drop the entry
    reply[i] = 0
  elseif redis.call('ZREM', K_DEAD, id) == 1 then
    redis.call('HSET', K_TASKS, id, with_fresh_attempts(rec, t))
    pend(fmt(pending_score(t.prio, seq + i - 1, since)), id)
    moved = moved + 1
    reply[i] = 1
    ev_add(items, id, t.used)
  else
    reply[i] = 0
  end
end
wake_pending(was_empty and moved > 0)
emit('requeued', '', items)
return reply
