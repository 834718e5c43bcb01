#!lua
--[[
name: take
version: 3
purpose: Push mode: a worker takes up to n of the tasks dispatch assigned to it (their leases
  already exist); each lease's deadline restarts now and it gets a fresh fencing token, so tokens
  reach a worker in increasing order whatever order dispatch assigned them in (the worker's start
  mark, start.lua, relies on it). On a queue stored in pull mode (configure)
  it claims pending tasks exactly as claim does, so a push worker never idles while tasks wait.
keys:
  1-18: the queue keyset
touches: meta(rw) tasks(rw) pending(rw) leased(rw) lease(rw) dead(w) cancelled(w) errors(w)
  assigned(rw) winfl(w) wstat(w) events(w) groups(rw) wf(rw)
argv:
  1: worker (string, 1-128 of [A-Za-z0-9-_:.]) — the worker's id
  2: n (int, 1..1000) — most tasks taken
  3: lease_ms (int, 1..86400000) — the leases' new duration
  4: dead_ttl_ms (int, 1..MAX_MS) — how long a task that expired before it could run is kept in
    the dead-letter set (its lease ends; it is never handed out)
reply: flat array, 4 entries per task, as claim: id, token, deadline_ms, record; on a pull queue
  with limits, claim's trailing wait as well
errors:
  BADARG: an argument is out of range; nothing was written
  VERSION: the queue holds another data schema version
  NOPERM: the Redis user lacks Baton's worker ACL rules; nothing was written
bound: O(n log N) for n <= 1000
  measured worst (cargo bench --bench worst_case, n = 1000, events on, 2-core VM): about 4-5 ms per call
]]
--@include args
--@include keys
--@include schema
--@include record
--@include notify
--@include registry
--@include fair
--@include lease
--@include events
--@include outbox
--@include flows
--@include deps
--@include limits
--@include fairpop
--@include claiming

local worker = id_arg(ARGV[1], 'worker')
local n = int_arg(ARGV[2], 'n', 1, MAX_BATCH)
local lease_ms = int_arg(ARGV[3], 'lease_ms', 1, 86400000)
local dead_ttl = int_arg(ARGV[4], 'dead_ttl_ms', 1, MAX_MS)
require_worker()
local meta = check_schema('paused')
-- The queue is in pull mode (configure): dispatch assigns nothing, so a push worker claims
-- pending tasks itself instead of idling — a rolling switch of modes strands no task.
if DM == 'pull' then
  if meta[2] == '1' then return {} end
  return claim_pending(worker, n, lease_ms, dead_ttl)
end
local ids = pop_assigned(worker, n)
if #ids == 0 then return {} end
local leases = redis.call('HMGET', K_LEASE, unpack(ids))
local recs = redis.call('HMGET', K_TASKS, unpack(ids))
local now = now_ms()
local deadline = fmt(now + lease_ms)
local suffix = '|' .. worker
local fence = take_fence(#ids)
local zargs, hargs, reply, items, expired, ended = {}, {}, {}, {}, {}, {}
for i, id in ipairs(ids) do
  local v = leases[i]
  local held = v and recs[i] and string.sub(v, -#suffix) == suffix
  if held and expired_at(recs[i], now) then
    expired[#expired + 1] = {id, recs[i]}
    ended[#ended + 1] = id
  elseif held then
    local token = fmt(fence + i)
    zargs[#zargs + 1] = deadline
    zargs[#zargs + 1] = id
    hargs[#hargs + 1] = id
    hargs[#hargs + 1] = token .. suffix
    reply[#reply + 1] = id
    reply[#reply + 1] = token
    reply[#reply + 1] = deadline
    reply[#reply + 1] = recs[i]
    if events_on() then ev_add(items, id, (rec_used(recs[i]) + 1)) end
  end
end
if #zargs > 0 then
  extend_leases(zargs)
  redis.call('HSET', K_LEASE, unpack(hargs))
end
emit('claimed', worker, items, now)
if #ended > 0 then end_leases(worker, ended) end
lapse_tasks(expired, now, dead_ttl)
return reply
