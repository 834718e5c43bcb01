#!lua
--[[
name: purge
version: 1
purpose: Delete dead tasks now (the dead-letter "delete" button): given ids, or the oldest ones.
keys:
  1-18: the queue keyset
touches: meta(r) tasks(rw) dead(rw) results(w) errors(w) events(w) progress(w) groups(w) wf(w)
argv:
  1: mode (string, "ids" or "oldest")
  then target values: with "ids", 1..1000 task ids; with "oldest", one limit (int, 1..1000) —
     the oldest dead tasks are purged
reply: number of tasks purged (ids not in the dead-letter set are skipped)
errors:
  BADARG: an argument is out of range; nothing was written
  VERSION: the queue holds another data schema version
  NOPERM: the Redis user lacks Baton's worker ACL rules; nothing was written
bound: O(n log N) for n <= 1000
]]
--@include args
--@include keys
--@include schema
--@include record
--@include notify
--@include events
--@include deadletter
--@include fair
--@include drop

local ids, seen = {}, {}
require_worker()
for _, id in ipairs(select_dead()) do
  if not seen[id] and redis.call('ZSCORE', K_DEAD, id) then
    seen[id] = true
    ids[#ids + 1] = id
  end
end
if #ids > 0 then
  local items = {}
  if events_on() then
    local recs = redis.call('HMGET', K_TASKS, unpack(ids))
    for i, id in ipairs(ids) do ev_add(items, id, (recs[i] and rec_used(recs[i]) or 0)) end
  end
  redis.call('ZREM', K_DEAD, unpack(ids))
  drop_tasks(ids)
  emit('purged', '', items)
end
return #ids
