#!lua
--[[
name: trim
version: 1
purpose: The janitor: drop finished tasks (done, dead, cancelled) whose retention has passed,
  with everything kept about them (record, result, error). Bounded per call.
keys:
  1-18: the queue keyset
touches: meta(r) tasks(w) done(rw) dead(rw) cancelled(rw) results(w) errors(w) progress(w) groups(w)
  wf(w)
argv:
  1: limit (int, 1..1000) — most tasks dropped per terminal set in this call
reply: {dropped (int), more (int, 1 when a set still holds expired tasks: call again)}
errors:
  BADARG: an argument is out of range; nothing was written
  VERSION: the queue holds another data schema version
  NOPERM: the Redis user lacks Baton's worker ACL rules; nothing was written
bound: O(limit log N) per terminal set
]]
--@include args
--@include keys
--@include schema
--@include notify
--@include fair
--@include drop

local limit = int_arg(ARGV[1], 'limit', 1, MAX_BATCH)
require_worker()
check_schema()
local now = fmt(now_ms())
local dropped, more = 0, 0
for _, set in ipairs({K_DONE, K_DEAD, K_CANCELLED}) do
  local ids = redis.call('ZRANGEBYSCORE', set, '-inf', now, 'LIMIT', 0, limit)
  if #ids > 0 then
    redis.call('ZREM', set, unpack(ids))
    drop_tasks(ids)
    dropped = dropped + #ids
    if #ids == limit then more = 1 end
  end
end
return {dropped, more}
