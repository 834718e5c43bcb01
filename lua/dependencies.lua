#!lua flags=no-writes
--[[
name: dependencies
version: 1
purpose: A task's dependencies and how each ended, with its result or last error, read in one
  call (a dependent's handler reads what its dependencies produced). Read-only (runs on
  replicas).
keys:
  1-18: the queue keyset
touches: meta(r) results(r) errors(r) wf(r)
argv:
  1: id (string, 1-128 of [A-Za-z0-9-_:.]) — the dependent task
reply: flat array, 3 per dependency (at most 10000, in no particular order): dependency id,
  state ("done", "dead", "cancelled", or "waiting": not finished yet), and its result when done
  or its last error message ("run|at_ms|message") when dead or cancelled, "" when no longer kept
  (the dependency's retention passed) or not finished. Empty when the task has no dependencies
  (or is no longer kept).
errors:
  BADARG: an argument is out of range
  VERSION: the queue holds another data schema version
bound: O(d) for d <= 10000 dependencies
]]
--@include args
--@include keys
--@include schema
--@include notify

local id = id_arg(ARGV[1], 'id')
check_schema()
if not DEPS then return {} end
local all = redis.call('HGETALL', wkey('wx:' .. id))
local ids, states = {}, {}
for i = 1, #all, 2 do
  -- '#...' fields are the hash's own, and '<queue>/#<flow>' is a flow's seal, not a task
  if string.sub(all[i], 1, 1) ~= '#' and not string.find(all[i], '/#', 1, true) then
    ids[#ids + 1] = all[i]
    states[#states + 1] = all[i + 1] == 'w' and 'waiting' or all[i + 1]
  end
end
if #ids == 0 then return {} end
local res, err = {}, {}
for s = 1, #ids, 1000 do -- unpack takes a few thousand values at most
  local part = {unpack(ids, s, math.min(s + 999, #ids))}
  local r = redis.call('HMGET', K_RESULTS, unpack(part))
  local e = redis.call('HMGET', K_ERRORS, unpack(part))
  for j = 1, #part do
    res[s + j - 1] = r[j]
    err[s + j - 1] = e[j]
  end
end
local reply = {}
for i, dep in ipairs(ids) do
  reply[#reply + 1] = dep
  reply[#reply + 1] = states[i]
  if states[i] == 'done' then
    reply[#reply + 1] = res[i] or ''
  elseif states[i] == 'waiting' then
    reply[#reply + 1] = ''
  else
    reply[#reply + 1] = err[i] or ''
  end
end
return reply
