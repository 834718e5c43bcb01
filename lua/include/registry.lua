-- include/registry.lua — the worker registry's counters.
--@include keys

-- Kept by the same scripts that move leases, so they never drift from the real leases:
-- winfl = leases held (in flight), wstat = "<worker>:a" assigned, ":c" completed, ":f" failed
-- attempts, ":b" busy ms.
local function inflight_add(worker, n)
  if n ~= 0 then redis.call('HINCRBY', K_WINFL, worker, n) end
end

local function stat_add(worker, field, n)
  if n ~= 0 then redis.call('HINCRBY', K_WSTAT, worker .. ':' .. field, n) end
end

-- Lower the in-flight counter of a worker whose lease was taken from it (cancel, reclaim). A
-- worker pruned from the registry meanwhile keeps no counter: HINCRBY would create one again.
local function inflight_lost(worker, n)
  if redis.call('HEXISTS', K_WINFL, worker) == 1 then inflight_add(worker, -n) end
end

-- Drop a worker's statistics and its dispatch state (its smooth weighted round-robin share in
-- meta), when it leaves the registry.
local function forget_worker_stats(worker)
  redis.call('HDEL', K_WSTAT, worker .. ':a', worker .. ':c', worker .. ':f', worker .. ':b')
  redis.call('HDEL', K_META, 'sw:' .. worker)
end
