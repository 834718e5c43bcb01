#!lua flags=no-writes
--[[
name: groups
version: 1
purpose: List a queue's groups: first those with pending tasks on a fair queue, next to be served
  first (lowest virtual time), then groups with a weight set and no pending task. Read-only (runs
  on replicas).
keys:
  1-18: the queue keyset
touches: meta(r) groups(r)
argv:
  1: limit (int, 1..1000) — most groups listed
reply: flat array, 4 per group: name, backlog (pending tasks in the group; 0 on a fifo queue,
  which keeps no per-group order), weight (1 when none is set), virtual time (string: the
  group's place in the fair order; "" for a group without pending tasks)
errors:
  BADARG: an argument is out of range
  VERSION: the queue holds another data schema version
bound: O(limit log G) for G groups
]]
--@include args
--@include keys
--@include schema
--@include fair

local limit = int_arg(ARGV[1], 'limit', 1, MAX_BATCH)
check_schema()
local reply, seen = {}, {}
local ready = redis.call('ZRANGE', GK_READY, 0, limit - 1, 'WITHSCORES')
local names = {}
for i = 1, #ready, 2 do names[#names + 1] = ready[i] end
if #names < limit then
  local page = redis.call('HSCAN', GK_GROUPS, '0', 'MATCH', 'w:*', 'COUNT', limit)
  for i = 1, #page[2], 2 do
    local g = string.sub(page[2][i], 3)
    if #names < limit and not redis.call('ZSCORE', GK_READY, g) then names[#names + 1] = g end
  end
end
for i, g in ipairs(names) do
  if not seen[g] then
    seen[g] = true
    reply[#reply + 1] = g
    reply[#reply + 1] = redis.call('ZCARD', gpending(g))
    reply[#reply + 1] = tonumber(redis.call('HGET', GK_GROUPS, 'w:' .. g)) or 1
    reply[#reply + 1] = ready[2 * i] or ''
  end
end
return reply
