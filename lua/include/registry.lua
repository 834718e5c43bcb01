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
