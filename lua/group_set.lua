#!lua
--[[
name: group_set
version: 3
purpose: Change a group's settings at run time: its weight under fair queueing, or its own
  concurrency cap, rate limit or burst (include/fairpop.lua), or reset them all. A group of
  weight w gets w shares of the workers among the groups that have pending tasks; a capped group
  never has more leases alive at once than its cap; a rate-limited group is handed tasks of at
  most W / rate + burst cost in any window W. The change applies from the group's next claim on;
  nothing restarts.
keys:
  1-18: the queue keyset
touches: meta(rw) groups(rw)
argv:
  1: group (string, 1-128 of [A-Za-z0-9-_:.]) — the group ("default": tasks enqueued without one)
  2: field (string, "weight", "concurrency", "rate", "burst" or "reset") — what to set; reset
    puts the group back to the defaults (weight 1, the queue's group_concurrency, group_rate and
    group_burst)
  3: value (int, 0..86400000000) — weight: 1..10000; concurrency: the group's cap, 0 = no cap
    even when the queue has a group_concurrency; rate: µs between two of the group's tasks, 0 =
    no rate limit even when the queue has a group_rate; burst: 1..1000000; reset: ignored
reply: {weight, concurrency, rate, burst} the group had before (int; weight 1 when none was
  set; the others -1 when the group had none of its own)
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
-- each field's hash prefix and range
local FIELDS = {weight = {'w:', 1, 10000}, concurrency = {'c:', 0, 1000000}, rate = {'r:', 0, 86400000000},
  burst = {'b:', 1, 1000000}}
local spec = FIELDS[field]
if spec == nil and field ~= 'reset' then
  bail('BADARG', 'field must be "weight", "concurrency", "rate", "burst" or "reset", got ' .. tostring(field))
end
local value = int_arg(ARGV[3], 'value', 0, 86400000000)
if spec then int_arg(ARGV[3], field, spec[2], spec[3]) end
require_worker()
check_schema()
local f = {'w:' .. group, 'c:' .. group, 'r:' .. group, 'b:' .. group}
local old = redis.call('HMGET', gkey('groups'), unpack(f))
if spec then
  redis.call('HSET', gkey('groups'), spec[1] .. group, fmt(value))
  if field ~= 'weight' then redis.call('HSET', K_META, 'gk', '1') end
else
  -- the rate state stays: a reset must not hand a throttled group a fresh burst
  redis.call('HDEL', gkey('groups'), f[1], f[2], f[3], f[4], 'h:' .. group)
end
-- a change may let a parked group run at once: it is looked at again by the next claim
if redis.call('ZREM', gkey('gpark'), group) == 1 then fair_lib().ready_group(group) end
return {tonumber(old[1]) or 1, tonumber(old[2]) or -1, tonumber(old[3]) or -1, tonumber(old[4]) or -1}
