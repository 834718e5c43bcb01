-- include/lease.lua — leases and push assignments. A lease is a task's deadline in `leased` and
-- its "token|worker" in `lease`; a push assignment is also filed as "worker|id" in `assigned`
-- until the worker takes it.
--@include keys
--@include registry
--@include notify
--@include fair

-- Lease value: "token|worker". Callers prove they hold a lease by sending both.
local function lease_worker(v)
  return string.match(v, '|(.*)$')
end

-- The fencing token of a lease value, as a number.
local function lease_token(v)
  return tonumber(string.match(v, '^(%d+)|')) or 0
end

-- Which leases of a batch `worker` still holds: group i names task ids[i] and sends its token in
-- ARGV[tok + step * i]. One HMGET for the batch; a lease is held when its value is exactly
-- "token|worker", so a reclaimed, cancelled or acknowledged lease, or another worker's, is not.
-- Returns held[i] = true for the held ones. With `once`, a task sent twice counts at its first
-- held group only, so an acknowledgement acts once.
local function held_leases(worker, ids, tok, step, once)
  local leases = redis.call('HMGET', K_LEASE, unpack(ids))
  local suffix = '|' .. worker
  local held, seen = {}, {}
  for i, id in ipairs(ids) do
    local v = leases[i]
    if v and not seen[id] and v == ARGV[tok + step * i] .. suffix then
      held[i] = true
      if once then seen[id] = true end
    end
  end
  return held
end

-- Reserve n lease tokens from the queue's fence counter with one HINCRBY: token i of the batch
-- is the returned base + i, unique and increasing per queue.
local function take_fence(n)
  return redis.call('HINCRBY', K_META, 'fence', n) - n
end

-- Create a batch of leases: zargs = deadline, id pairs; hargs = id, "token|worker" pairs.
local function put_leases(zargs, hargs)
  redis.call('ZADD', K_LEASED, unpack(zargs))
  redis.call('HSET', K_LEASE, unpack(hargs))
end

-- `worker` was given n new leases (claimed or dispatched).
local function leases_given(worker, n)
  inflight_add(worker, n)
  stat_add(worker, 'a', n)
end

-- New deadlines for existing leases (zargs = deadline, id pairs). XX: a lease that ended or was
-- reclaimed meanwhile is not brought back.
local function extend_leases(zargs)
  if #zargs > 0 then redis.call('ZADD', K_LEASED, 'XX', unpack(zargs)) end
end

-- End leases `worker` held on `ids` (completed, failed, released, handed back): drop them, lower
-- its in-flight counter, and tell push dispatchers that capacity was freed.
local function end_leases(worker, ids)
  redis.call('HDEL', K_LEASE, unpack(ids))
  redis.call('ZREM', K_LEASED, unpack(ids))
  inflight_add(worker, -#ids)
  signal_free()
  groups_freed(ids)
end

-- The members "worker|id" of `assigned` filed under `worker`, at most `limit`.
local function assigned_to(worker, limit)
  return redis.call('ZRANGEBYLEX', K_ASSIGNED, '[' .. worker .. '|', '[' .. worker .. '|\255', 'LIMIT', 0, limit)
end

-- Take up to `limit` tasks assigned to `worker` out of `assigned`; returns their ids.
local function pop_assigned(worker, limit)
  local members = assigned_to(worker, limit)
  if #members == 0 then return members end
  redis.call('ZREM', K_ASSIGNED, unpack(members))
  local ids = {}
  for i, m in ipairs(members) do ids[i] = string.sub(m, #worker + 2) end
  return ids
end
