#!lua
--[[
name: configure
version: 1
purpose: Store a queue's settings that the other scripts read from meta: the lifecycle events
  stream cap and the dispatch mode (pull: dispatch assigns nothing and take claims like claim;
  push: dispatch assigns). Run by baton-scheduler and baton-worker at start from their [queues] config; until
  then a queue uses the defaults (events on, 10000 stream entries).
keys:
  1-17: the queue keyset
touches: meta(rw) events(w)
argv:
  1: events_max_len (int, 0..100000000) — approximate cap (MAXLEN ~) of the events stream, in
    entries (one entry per script call and event type); 0 = no events (no XADD, no PUBLISH)
  2: dispatch (string, "pull" or "push") — how tasks reach workers on this queue
reply: the dispatch mode stored before ("pull", "push", or "" for a new queue)
errors:
  BADARG: an argument is out of range; nothing was written
  VERSION: the queue holds another data schema version
  NOPERM: the Redis user lacks Baton's worker ACL rules; nothing was written
bound: O(1)
]]
--@include args
--@include keys
--@include schema

local ev = int_arg(ARGV[1], 'events_max_len', 0, 100000000)
local dm = ARGV[2]
if dm ~= 'pull' and dm ~= 'push' then
  bail('BADARG', 'dispatch must be "pull" or "push", got ' .. tostring(dm))
end
require_worker()
local before = stamp_schema('dm')[2] or ''
redis.call('HSET', K_META, 'ev', ev, 'dm', dm)
if ev == 0 then redis.call('DEL', K_EVENTS) end
return before
