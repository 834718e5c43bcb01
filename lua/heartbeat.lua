#!lua
--[[
name: heartbeat
version: 1
purpose: Renew every lease a worker holds in one call — those it runs and those push dispatch
  assigned to it that it has not taken yet — and the worker's own liveness in the registry;
  report the leases it no longer holds.
keys:
  1-18: the queue keyset
touches: meta(r) leased(w) lease(r) cancelled(r) wbeat(rw) assigned(r)
argv:
  1: worker (string) — the worker's id
  2: lease_ms (int, 1..86400000) — new deadline is Redis TIME + lease_ms
  then pairs: id, token — the leases to renew (0..1000 pairs)
reply: flat array: first 1 if the worker is in the registry (0: it was pruned as dead or never
  registered — call register again), then one status per pair, in order: 1 = renewed, 0 = lost
  (the lease expired and was reclaimed, or the token is stale: stop the handler, its result will
  be refused), 2 = cancelled (stop the handler)
errors:
  BADARG: an argument is out of range or the pairs are incomplete; nothing was written
  VERSION: the queue holds another data schema version
  NOPERM: the Redis user lacks Baton's worker ACL rules; nothing was written
bound: O(n log N) for n <= 1000 pairs
  measured worst (cargo bench --bench worst_case, n = 1000, events on, 2-core VM): about 2-3 ms per call
]]
--@include args
--@include keys
--@include schema
--@include notify
--@include registry
--@include fair
--@include lease

local worker = id_arg(ARGV[1], 'worker')
local lease_ms = int_arg(ARGV[2], 'lease_ms', 1, 86400000)
local np = groups_arg(2, 2, 0, MAX_BATCH, 'id/token pairs after worker and lease_ms')
require_worker()
check_schema()

local now = now_ms()
local registered = 0
if redis.call('ZSCORE', K_WBEAT, worker) then
  redis.call('ZADD', K_WBEAT, fmt(now), worker)
  registered = 1
end
local deadline = fmt(now + lease_ms)
local z = {}
for _, m in ipairs(assigned_to(worker, MAX_BATCH)) do
  z[#z + 1] = deadline
  z[#z + 1] = string.sub(m, #worker + 2)
end
extend_leases(z)
if np == 0 then return {registered} end
local ids = {}
for i = 1, np do ids[i] = ARGV[1 + 2 * i] end
local held = held_leases(worker, ids, 2, 2, false)
local zargs, reply = {}, {registered}
for i, id in ipairs(ids) do
  if held[i] then
    zargs[#zargs + 1] = deadline
    zargs[#zargs + 1] = id
    reply[i + 1] = 1
  elseif redis.call('ZSCORE', K_CANCELLED, id) then
    reply[i + 1] = 2
  else
    reply[i + 1] = 0
  end
end
extend_leases(zargs)
return reply
