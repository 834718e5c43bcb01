#!lua
--[[
name: group_set
version: 1
purpose: Change a group's settings at run time: its weight under fair queueing (include/fair.lua).
  A group of weight w gets w shares of the workers among the groups that have pending tasks. The
  change applies from the group's next task on; nothing restarts.
keys:
  1-18: the queue keyset
touches: meta(r) groups(rw)
argv:
  1: group (string, 1-128 of [A-Za-z0-9-_:.]) — the group ("default": tasks enqueued without one)
  2: weight (int, 0..10000) — the group's weight; 0 = back to the default, 1
reply: the weight it had before (int; 1 when it had none set)
errors:
  BADARG: an argument is out of range; nothing was written
  VERSION: the queue holds another data schema version
  NOPERM: the Redis user lacks Baton's worker ACL rules; nothing was written
bound: O(1)
]]
--@include args
--@include keys
--@include schema
--@include fair

local group = id_arg(ARGV[1], 'group')
local weight = int_arg(ARGV[2], 'weight', 0, 10000)
require_worker()
check_schema()
local f = 'w:' .. group
local before = tonumber(redis.call('HGET', GK_GROUPS, f)) or 1
if weight == 0 then
  redis.call('HDEL', GK_GROUPS, f)
else
  redis.call('HSET', GK_GROUPS, f, weight)
end
return before
