#!lua
--[[
name: pause
version: 1
purpose: Pause (no task is claimed) or resume a queue. Enqueue, maintenance and running tasks go
  on while paused. Resuming wakes idle workers.
keys:
  1-18: the queue keyset
touches: meta(rw) pending(r)
argv:
  1: paused (int, 0..1; 1 = pause, 0 = resume)
reply: the previous state (1 paused, 0 running)
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

local paused = int_arg(ARGV[1], 'paused', 0, 1)
require_worker()
local meta = stamp_schema('paused')
local was = meta[2] == '1' and 1 or 0
redis.call('HSET', K_META, 'paused', paused)
if paused == 0 and was == 1 and redis.call('ZCARD', K_PENDING) > 0 then
  redis.call('PUBLISH', CHAN_WAKE, 'p')
end
return was
