#!lua
--[[
name: group_set
version: 2
purpose: Change a group's settings at run time: its weight under fair queueing, or its own
  concurrency cap (include/fair.lua), or reset both. A group of weight w gets w shares of the
  workers among the groups that have pending tasks; a capped group never has more leases alive
  at once than its cap. The change applies from the group's next claim on; nothing restarts.
keys:
  1-18: the queue keyset
touches: meta(rw) groups(rw)
argv:
  1: group (string, 1-128 of [A-Za-z0-9-_:.]) — the group ("default": tasks enqueued without one)
  2: field (string, "weight", "concurrency" or "reset") — what to set; reset puts the group back
    to the defaults (weight 1, the queue's group_concurrency)
  3: value (int, 0..1000000) — weight: 1..10000; concurrency: the group's cap, 0 = no cap even
    when the queue has a group_concurrency; reset: ignored
reply: {weight, concurrency} the group had before (int; weight 1 when none was set; concurrency
  -1 when the group had no cap of its own)
errors:
  BADARG: an argument is out of range; nothing was written
  VERSION: the queue holds another data schema version
  NOPERM: the Redis user lacks Baton's worker ACL rules; nothing was written
bound: O(1)
]]
--@include args
--@include keys
--@include schema
--@include notify
--@include fair

local group = id_arg(ARGV[1], 'group')
local field = ARGV[2]
if field ~= 'weight' and field ~= 'concurrency' and field ~= 'reset' then
  bail('BADARG', 'field must be "weight", "concurrency" or "reset", got ' .. tostring(field))
end
local value = int_arg(ARGV[3], 'value', 0, 1000000)
if field == 'weight' and (value < 1 or value > 10000) then
  bail('BADARG', 'weight must be an integer in [1, 10000], got ' .. fmt(value))
end
require_worker()
check_schema()
local wf, cf = 'w:' .. group, 'c:' .. group
local old = redis.call('HMGET', gkey('groups'), wf, cf)
if field == 'weight' then
  redis.call('HSET', gkey('groups'), wf, value)
elseif field == 'concurrency' then
  redis.call('HSET', gkey('groups'), cf, value)
  redis.call('HSET', K_META, 'gk', '1')
else
  redis.call('HDEL', gkey('groups'), wf, cf)
end
-- a change may let a parked group run at once: it is looked at again by the next claim
if redis.call('ZREM', gkey('gpark'), group) == 1 then fair_lib().ready_group(group) end
return {tonumber(old[1]) or 1, tonumber(old[2]) or -1}
