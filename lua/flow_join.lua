#!lua
--[[
name: flow_join
version: 1
purpose: Count tasks of other queues as members of a flow of this queue (include/flows.lua),
  before they are enqueued there (with the option flow "<this queue>/<flow>"): a flow spanning
  queues keeps its bookkeeping in its own queue's slot, and a member is counted before it can
  run, so no callback can fire early. Each member is counted once, however often the call is
  retried (even after the member ended). Their ends are told back through their queues'
  outboxes (include/outbox.lua).
keys:
  1-18: the queue keyset
touches: meta(r) wf(rw)
argv:
  1: flow (string, 1-128 of [A-Za-z0-9-_:.]) — the flow's id; it must be open
  then 1..1000 members of 2 fields:
    member (string) — "<queue>/<id>", the task of another queue (of the same prefix)
    name (string) — its name in the flow (unique within it), or "" for none
reply: how many members joined in this call
errors:
  BADARG: an argument is out of range, the flow is unknown or not open, a name is taken by
    another member, or the flow would have more than FLOW_MAX_TASKS members; nothing was written
  VERSION: the queue holds another data schema version
bound: O(m) for m members
]]
--@include args
--@include keys
--@include schema
--@include notify
--@include record
--@include fair
--@include events
--@include outbox
--@include flows

local f = id_arg(ARGV[1], 'flow')
local m = (#ARGV - 1) / 2
if m ~= math.floor(m) or m < 1 or m > MAX_BATCH then
  bail('BADARG', 'expected the flow, then 1..' .. MAX_BATCH .. ' members of 2 fields (member, name), got ' .. #ARGV .. ' arguments')
end
check_schema()
local fk = flow_key(f)
local h = redis.call('HMGET', fk, '#state', '#total')
if not h[1] then
  bail('BADARG', 'unknown flow ' .. f .. ' (flow_open makes it; or it ended and is no longer kept)')
end
if h[1] ~= 'open' then bail('BADARG', 'flow ' .. f .. ' is ' .. h[1] .. ': members join it only while it is open') end
local total, new, seen = tonumber(h[2]) or 0, {}, {}
for i = 1, m do
  local who, name = ARGV[2 * i], ARGV[2 * i + 1]
  local q, id = remote_ref(who or '')
  if not q then bail('BADARG', 'member must be "<queue>/<id>" of another queue, got ' .. tostring(who)) end
  id_arg(q, 'member (queue)')
  id_arg(id, 'member (id)')
  if q == QUEUE_NAME then bail('BADARG', 'member ' .. who .. ' is a task of this queue: it joins by enqueue (option flow)') end
  if name ~= '' then
    id_arg(name, 'name')
    local owner = seen['n:' .. name] or redis.call('HGET', fk, 'n:' .. name)
    if owner and owner ~= who then
      bail('BADARG', 'flow ' .. f .. ' already has a task named ' .. name .. ' (' .. owner .. ')')
    end
    seen['n:' .. name] = who
  end
  if not seen[who] and redis.call('HEXISTS', fk, 'r:' .. who) == 0 then
    seen[who] = true
    new[#new + 1] = {who, name}
    total = total + 1
    if total > FLOW_MAX_TASKS then bail('BADARG', 'flow ' .. f .. ' would have more than ' .. FLOW_MAX_TASKS .. ' tasks: split it') end
  end
end
if #new == 0 then return 0 end
local entries, marks, tf = {}, {}, {}
for _, n in ipairs(new) do
  entries[#entries + 1] = n[1] .. ' ' .. n[2]
  marks[#marks + 1] = 'r:' .. n[1]
  marks[#marks + 1] = '1'
  if n[2] ~= '' then
    marks[#marks + 1] = 'n:' .. n[2]
    marks[#marks + 1] = n[1]
  end
  tf[#tf + 1] = n[1]
  tf[#tf + 1] = f
end
redis.call('RPUSH', flow_members_key(f), unpack(entries))
redis.call('HSET', fk, unpack(marks))
redis.call('HSET', wkey('tflow'), unpack(tf))
redis.call('HINCRBY', fk, '#total', #new)
return #new
