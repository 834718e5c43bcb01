#!lua flags=no-writes
--[[
name: groups
version: 3
purpose: List a queue's groups: those with pending tasks on a fair queue, next to be served first
  (lowest virtual time), then groups parked by a limit of their own (earliest to run again
  first), then groups with settings and no pending task. Read-only (runs on replicas).
keys:
  1-18: the queue keyset
touches: meta(r) leased(r) groups(r)
argv:
  1: limit (int, 1..1000) — most groups listed
reply: flat array, 10 per group: name, backlog (pending tasks in the group; 0 on a fifo queue,
  which keeps no per-group order), weight (1 when none is set), virtual time (string: the
  group's place in the fair order; "" when it is not ready), cap (int: its concurrency cap, its
  own or the queue's group_concurrency; -1 = none), running (int: its live leases, counted when
  it has a cap), parked_until_ms (int: Redis ms when a parked group is looked at again at the
  latest; 0 = not parked), rate_interval_us (int: its rate limit, its own or the queue's
  group_rate, as µs between two tasks; 0 = none), burst (int), held_by (string: the limit that
  parked it, "group_rate" or "group_concurrency"; "" when not parked)
errors:
  BADARG: an argument is out of range
  VERSION: the queue holds another data schema version
bound: O(limit * (log G + cap)) for G groups
]]
--@include args
--@include keys
--@include schema
--@include notify
--@include fair

local limit = int_arg(ARGV[1], 'limit', 1, MAX_BATCH)
local meta = check_schema('gc', 'gr', 'gb')
local cap_default = tonumber(meta[2]) or 0
local rate_default, burst_default = tonumber(meta[3]) or 0, tonumber(meta[4]) or 1
local now = now_ms()
local names, vts, parked, seen = {}, {}, {}, {}
local function add(g)
  if #names < limit and not seen[g] then
    seen[g] = true
    names[#names + 1] = g
  end
end
local ready = redis.call('ZRANGE', gkey('gready'), 0, limit - 1, 'WITHSCORES')
for i = 1, #ready, 2 do
  add(ready[i])
  vts[ready[i]] = ready[i + 1]
end
local park = redis.call('ZRANGE', gkey('gpark'), 0, limit - 1, 'WITHSCORES')
for i = 1, #park, 2 do
  add(park[i])
  parked[park[i]] = park[i + 1]
end
if #names < limit then
  local page = redis.call('HSCAN', gkey('groups'), '0', 'MATCH', '[wcrb]:*', 'COUNT', limit)
  for i = 1, #page[2], 2 do add(string.sub(page[2][i], 3)) end
end
local reply = {}
for _, g in ipairs(names) do
  local s = redis.call('HMGET', gkey('groups'), 'w:' .. g, 'c:' .. g, 'r:' .. g, 'b:' .. g, 'h:' .. g)
  local cap = tonumber(s[2]) or cap_default
  local running = 0
  if cap > 0 then
    local members = redis.call('ZRANGE', gkey('gl:' .. g), 0, -1)
    if #members > 0 then
      for _, d in ipairs(redis.call('ZMSCORE', K_LEASED, unpack(members))) do
        if tonumber(d) and tonumber(d) > now then running = running + 1 end
      end
    end
  end
  reply[#reply + 1] = g
  reply[#reply + 1] = redis.call('ZCARD', gkey('gp:' .. g))
  reply[#reply + 1] = tonumber(s[1]) or 1
  reply[#reply + 1] = vts[g] or ''
  reply[#reply + 1] = cap > 0 and cap or -1
  reply[#reply + 1] = running
  reply[#reply + 1] = tonumber(parked[g]) or 0
  local rate = tonumber(s[3]) or rate_default
  reply[#reply + 1] = rate
  reply[#reply + 1] = rate > 0 and (tonumber(s[4]) or burst_default) or 1
  reply[#reply + 1] = parked[g] and s[5] or ''
end
return reply
