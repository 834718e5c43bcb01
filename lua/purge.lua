#!lua
--[[
name: purge
version: 1
purpose: Delete dead tasks now (the dead-letter "delete" button): given ids, or the oldest ones.
keys:
  1-13: the queue keyset
argv:
  1: mode (string): "ids" — the rest of ARGV are task ids (1..1000); "oldest" — ARGV[2] is a
     limit (int, 1..1000) and the oldest dead tasks are purged
reply: number of tasks purged (ids not in the dead-letter set are skipped)
errors:
  BADARG: an argument is out of range; nothing was written
  VERSION: the queue holds another data schema version
bound: O(n log N) for n <= 1000
]]
--@include common

local mode = ARGV[1]
local ids
if mode == 'oldest' then
  local limit = int_arg(ARGV[2], 'limit', 1, MAX_BATCH)
  check_schema(false)
  ids = redis.call('ZRANGE', K_DEAD, 0, limit - 1)
elseif mode == 'ids' then
  if #ARGV < 2 or #ARGV > MAX_BATCH + 1 then
    bail('BADARG', 'expected 1..' .. MAX_BATCH .. ' task ids after "ids", got ' .. (#ARGV - 1))
  end
  check_schema(false)
  ids = {}
  for i = 2, #ARGV do
    if redis.call('ZSCORE', K_DEAD, ARGV[i]) then ids[#ids + 1] = ARGV[i] end
  end
else
  bail('BADARG', 'mode must be "ids" or "oldest", got ' .. tostring(mode))
end
if #ids > 0 then
  redis.call('ZREM', K_DEAD, unpack(ids))
  drop_tasks(ids)
end
return #ids
