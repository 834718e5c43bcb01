-- include/lease.lua — leases: a task's deadline in `leased` and its "token|worker" in `lease`.
--@include keys
--@include registry
--@include notify

-- Lease value: "token|worker". Callers prove they hold a lease by sending both.
local function lease_worker(v)
  return string.match(v, '|(.*)$')
end

-- End leases `worker` held on `ids` (completed, failed, released, handed back): drop them, lower
-- its in-flight counter, and tell push dispatchers that capacity was freed.
local function end_leases(worker, ids)
  redis.call('HDEL', K_LEASE, unpack(ids))
  redis.call('ZREM', K_LEASED, unpack(ids))
  inflight_add(worker, -#ids)
  signal_free()
end
