#!lua
--[[
name: register
version: 1
purpose: Add a worker to the queue's registry (or refresh its description), marking it alive now.
  Workers call it at start and again when a heartbeat says they were pruned.
keys:
  1-18: the queue keyset
touches: meta(rw) workers(w) wbeat(w) winfl(w)
argv:
  1: worker (string, 1-128 of [A-Za-z0-9-_:.]) — the worker's id, unique per process
  2: info (string, JSON object, at most 4096 bytes) — how the worker describes itself (host, pid,
     concurrency, weight, capacity, handler kinds, started_ms, version...)
reply: 1
errors:
  BADARG: an argument is out of range; nothing was written
  VERSION: the queue holds another data schema version
  NOPERM: the Redis user lacks Baton's worker ACL rules; nothing was written
bound: O(log N)
]]
--@include args
--@include keys
--@include schema

local worker = id_arg(ARGV[1], 'worker')
local info = ARGV[2]
if info == nil or #info > 4096 or string.sub(info, 1, 1) ~= '{' then
  bail('BADARG', 'info must be a JSON object of at most 4096 bytes')
end
require_worker()
stamp_schema()
redis.call('HSET', K_WORKERS, worker, info)
redis.call('HSETNX', K_WINFL, worker, 0)
redis.call('ZADD', K_WBEAT, fmt(now_ms()), worker)
return 1
