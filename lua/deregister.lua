#!lua
--[[
name: deregister
version: 1
purpose: Take a worker out of the queue's registry, in two steps of a clean shutdown.
  "leave" (shutdown begins): the worker stops being live, so dispatch assigns it nothing more,
  and the tasks dispatch assigned to it that it has not taken go back to the front of pending
  without counting an attempt (at most 1000 per call: call again while it returns 1000).
  "final" (after its last lease ended): its description and counters are removed.
keys:
  1-18: the queue keyset
touches: meta(rw) tasks(r) pending(rw) leased(w) lease(rw) workers(w) wbeat(w) assigned(rw) winfl(w)
  wstat(w) events(w) groups(rw)
argv:
  1: worker (string) — the worker's id
  2: mode (string, "leave" or "final")
reply: "leave": number of assigned tasks handed back; "final": 1 if it was registered, else 0
errors:
  BADARG: an argument is out of range; nothing was written
  VERSION: the queue holds another data schema version
  NOPERM: the Redis user lacks Baton's worker ACL rules; nothing was written
bound: O(n log N) for n <= 1000 assigned tasks
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
local mode = ARGV[2]
if mode ~= 'leave' and mode ~= 'final' then
  bail('BADARG', 'mode must be "leave" or "final", got ' .. tostring(mode))
end
require_worker()
check_schema()
if mode == 'final' then
  local was = redis.call('HDEL', K_WORKERS, worker)
  redis.call('ZREM', K_WBEAT, worker)
  redis.call('HDEL', K_WINFL, worker)
  forget_worker_stats(worker)
  return was
end

redis.call('ZREM', K_WBEAT, worker)
local ids = pop_assigned(worker, MAX_BATCH)
if #ids == 0 then return 0 end
local leases = redis.call('HMGET', K_LEASE, unpack(ids))
local recs = redis.call('HMGET', K_TASKS, unpack(ids))
local was_empty = redis.call('ZCARD', K_PENDING) == 0
local suffix = '|' .. worker
local back, items = {}, {}
for i, id in ipairs(ids) do
  local v = leases[i]
  local t = recs[i] and parse_record(recs[i])
  if t and v and string.sub(v, -#suffix) == suffix then
    back[#back + 1] = id
    ev_add(items, id, t.used)
    -- sequence 0: ahead of every task of the same priority, as release does
    pend(fmt(pending_score(t.prio, 0, t.created)), id)
  end
end
if #back > 0 then
  end_leases(worker, back)
  wake_pending(was_empty)
  emit('released', worker, items)
end
return #back
