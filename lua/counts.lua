#!lua flags=no-writes
--[[
name: counts
version: 1
purpose: Count the tasks of a queue in each state set. Read-only (runs on replicas).
keys:
  1-11: the queue keyset
argv: none
reply: {pending, delayed, leased, done, dead, cancelled, paused (0/1)} — integers. done/dead/
  cancelled may include tasks past retention that the janitor has not dropped yet.
errors:
  VERSION: the queue holds another data schema version
bound: O(1)
]]
--@include common

local meta = check_schema(false, 'paused')
return {redis.call('ZCARD', K_PENDING), redis.call('ZCARD', K_DELAYED), redis.call('ZCARD', K_LEASED),
  redis.call('ZCARD', K_DONE), redis.call('ZCARD', K_DEAD), redis.call('ZCARD', K_CANCELLED),
  meta[2] == '1' and 1 or 0}
