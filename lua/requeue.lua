#!lua
--[[
name: requeue
version: 1
purpose: Move dead tasks back to pending with fresh attempts (the dead-letter "retry" button).
keys:
  1-11: the queue keyset
argv:
  ids (1..1000)
reply: flat array, one per id: 1 = requeued, 0 = not in the dead-letter set (nothing changed)
errors:
  BADARG: an argument is out of range; nothing was written
  VERSION: the queue holds another data schema version
bound: O(n log N) for n <= 1000 ids
]]
--@include common

if #ARGV < 1 or #ARGV > MAX_BATCH then
  bail('BADARG', 'expected 1..' .. MAX_BATCH .. ' task ids, got ' .. #ARGV)
end
check_schema(false)

local was_empty = redis.call('ZCARD', K_PENDING) == 0
local seq = take_seq(#ARGV)
local reply = {}
local moved = 0
for i, id in ipairs(ARGV) do
  local rec = redis.call('HGET', K_TASKS, id)
  local t = rec and parse_record(rec)
  if t and redis.call('ZREM', K_DEAD, id) == 1 then
    redis.call('HSET', K_TASKS, id, with_used(rec, 0))
    redis.call('ZADD', K_PENDING, fmt(pending_score(t.prio, seq + i - 1)), id)
    moved = moved + 1
    reply[i] = 1
  else
    reply[i] = 0
  end
end
wake_pending(was_empty and moved > 0)
return reply
