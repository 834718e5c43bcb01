#!lua
--[[
name: cancel
version: 1
purpose: Cancel tasks that have not finished: pending, delayed, waiting for dependencies, or
  leased (the worker learns it at its next heartbeat and its result is refused). Cancelled tasks
  are kept for ttl_ms, then dropped. Tasks waiting for a cancelled task under policy fail are
  cancelled too, and theirs in turn (include/deps.lua).
keys:
  1-18: the queue keyset
touches: meta(rw) tasks(rw) pending(rw) delayed(w) leased(w) lease(rw) dead(w) cancelled(w) errors(w)
  assigned(w) winfl(rw) events(w) groups(rw) wf(rw)
argv:
  1: ttl_ms (int, 1..MAX_MS) — how long the cancelled task stays inspectable
  then ids (1..1000)
reply: flat array, one per id: the state the task was cancelled from ("pending", "delayed",
  "waiting", "leased"), or "" when it could not be cancelled (unknown, or already done/dead/cancelled)
errors:
  BADARG: an argument is out of range; nothing was written
  VERSION: the queue holds another data schema version
  NOPERM: the Redis user lacks Baton's worker ACL rules; nothing was written
bound: O(n log N) for n <= 1000 ids
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

local ttl = int_arg(ARGV[1], 'ttl_ms', 1, MAX_MS)
if #ARGV < 2 or #ARGV > MAX_BATCH + 1 then
  bail('BADARG', 'expected 1..' .. MAX_BATCH .. ' task ids after ttl_ms, got ' .. (#ARGV - 1))
end
require_worker()
check_schema()

local now = now_ms()
local exp = fmt(now + ttl)
local reply, final, items = {}, {}, {}
for i = 2, #ARGV do
  local id = ARGV[i]
  local from = ''
  if redis.call('ZREM', K_PENDING, id) == 1 then
    unpend_group(id)
    from = 'pending'
  elseif redis.call('ZREM', K_DELAYED, id) == 1 then
    from = 'delayed'
  elseif DEPS and redis.call('ZREM', wkey('waiting'), id) == 1 then
    from = 'waiting'
  elseif redis.call('ZREM', K_LEASED, id) == 1 then
    local owner = lease_worker(redis.call('HGET', K_LEASE, id) or '|')
    redis.call('HDEL', K_LEASE, id)
    if owner and owner ~= '' then
      redis.call('ZREM', K_ASSIGNED, owner .. '|' .. id)
      inflight_lost(owner, 1)
      signal_free()
      groups_freed({id})
    end
    from = 'leased'
  end
  if from ~= '' then
    redis.call('ZADD', K_CANCELLED, exp, id)
    local rec = redis.call('HGET', K_TASKS, id)
    local used = rec and string.match(rec, '^(%d+)|') or '0'
    redis.call('HSET', K_ERRORS, id, used .. '|' .. fmt(now) .. '|cancelled while ' .. from)
    final[#final + 1] = id
    ev_add(items, id, used)
  end
  reply[#reply + 1] = from
end
task_final(final, 'cancelled', now)
emit('cancelled', '', items, now)
return reply
