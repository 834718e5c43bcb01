#!lua
--[[
name: deregister
version: 1
purpose: Remove a worker from the queue's registry, with its counters (clean shutdown, after
  releasing its leases).
keys:
  1-16: the queue keyset
argv:
  1: worker (string) — the worker's id
reply: 1 if it was registered, 0 if not
errors:
  BADARG: an argument is out of range; nothing was written
  VERSION: the queue holds another data schema version
bound: O(log N)
]]
--@include common

local worker = id_arg(ARGV[1], 'worker')
check_schema(false)
redis.call('HDEL', K_WORKERS, worker)
redis.call('HDEL', K_WINFL, worker)
redis.call('HDEL', K_WSTAT, worker .. ':a', worker .. ':c', worker .. ':f', worker .. ':b')
redis.call('HDEL', K_META, 'sw:' .. worker)
return redis.call('ZREM', K_WBEAT, worker)
