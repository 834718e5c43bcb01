-- include/fair.lua — groups and fair queueing. A task may carry a group (tenant, customer, API
-- key); `tgroup` maps the ids of such tasks to their group, and a task without one is in the
-- group "default". On a queue configured fair (meta `fq` = '1'), every pending task is also
-- filed in its group's pending set `gp:<group>` (same score as in `pending`, so priorities and
-- aging order tasks within a group), and claim/dispatch serve the groups that have work by
-- start-time fair queueing: `gready` holds each such group scored by its virtual start time;
-- serving a task of group g advances g's virtual time by 1 / weight(g), and a group that gets
-- work again starts at max(its last finish time, the system's virtual time `gv`), so an idle
-- group banks no credit and a flood in one group cannot delay the others. `pending` stays the
-- one state set of pending tasks; the group sets are an index kept beside it.
--
-- Keys: the per-group keys cannot be named before the call (the group is decided inside it), so
-- they are derived from the meta key and share the queue's hash tag, hence its cluster slot:
-- `<prefix>:{q}:groups` (hash: w:<g> weight, v:<g> the group's virtual finish time while it has
-- no work), `<prefix>:{q}:gready` (zset), `<prefix>:{q}:tgroup` (hash), `<prefix>:{q}:gp:<g>`
-- (zset), and for the groups' limits (include/fairpop.lua) `gpark` (zset: groups parked by
-- their cap or rate, scored by when they are looked at again) and `gl:<g>` (zset: the group's
-- leases). `tcost` (hash: task id -> cost, include/limits.lua) lives beside them. Redis refuses
-- any of them from another slot (scripts start with #!lua).
--@include args
--@include keys
--@include schema
--@include notify

local DEFAULT_GROUP = 'default'

-- After a fair pop: ms until the first parked group may run again, when it handed out fewer than
-- asked because groups were parked by their limits.
local FAIR_WAIT = nil

-- A key of the queue's groups, derived from the meta key (same hash tag, same slot): `groups`,
-- `gready`, `tgroup`, `gpark`, `gp:<group>`, `gl:<group>`.
local function gkey(role)
  return string.sub(K_META, 1, -5) .. role
end

-- The fair-queueing library, built on first use in a call: a queue that is not fair (or has no
-- group limits) never pays for defining these functions (Redis runs a script's whole body, and
-- each function defined there is a closure made on every call).
local FAIR_LIB = nil

local function fair_lib()
  if FAIR_LIB then return FAIR_LIB end
  local function gpending(g)
    return gkey('gp:' .. g)
  end

  -- A group's lease set (group caps): the ids of tasks claimed in the group, checked against
  -- `leased` whenever the group's room is needed; entries whose lease ended or expired are dropped
  -- then, so a dead worker's slots free themselves at its leases' deadlines.
  local function glease(g)
    return gkey('gl:' .. g)
  end

  -- Virtual times are fractions: written with all their digits.
  local function vfmt(x)
    return string.format('%.17g', x)
  end

  local SYS_V = nil -- the system virtual time, read once per call (in this call's library)

  local function sys_v()
    if SYS_V == nil then SYS_V = tonumber(redis.call('HGET', K_META, 'gv')) or 0 end
    return SYS_V
  end

  -- Make group g ready (it has pending work) unless it already is, or is parked by a limit of
  -- its own (its park ends by time, or by the end of one of its leases).
  local function ready_group(g)
    if redis.call('ZSCORE', gkey('gready'), g) then return end
    if GLIM and redis.call('ZSCORE', gkey('gpark'), g) then return end
    local fin = tonumber(redis.call('HGET', gkey('groups'), 'v:' .. g)) or 0
    redis.call('ZADD', gkey('gready'), vfmt(math.max(fin, sys_v())), g)
  end

  -- Put task `id` (pending with `score`) in its group's set and make the group ready. `g` is its
  -- group when the caller knows it (enqueue), else it is looked up.
  local function file(score, id, g)
    g = g or redis.call('HGET', gkey('tgroup'), id) or DEFAULT_GROUP
    redis.call('ZADD', gpending(g), score, id)
    ready_group(g)
  end

  -- Leases of these tasks ended: they leave their groups' lease sets, and a group parked by its
  -- cap (not by its rate: a lease end does not change that) is ready again (the workers are
  -- woken once).
  local function freed(ids)
    local gs = redis.call('HMGET', gkey('tgroup'), unpack(ids))
    local by, order, hf = {}, {}, {}
    for i, id in ipairs(ids) do
      local g = gs[i] or DEFAULT_GROUP
      if not by[g] then
        by[g] = {}
        order[#order + 1] = g
        hf[#hf + 1] = 'h:' .. g
      end
      local list = by[g]
      list[#list + 1] = id
    end
    local held = redis.call('HMGET', gkey('groups'), unpack(hf))
    local woke = false
    for i, g in ipairs(order) do
      redis.call('ZREM', glease(g), unpack(by[g]))
      if held[i] ~= 'group_rate' and redis.call('ZREM', gkey('gpark'), g) == 1 then
        ready_group(g)
        woke = true
      end
    end
    if woke then redis.call('PUBLISH', CHAN_WAKE, 'p') end
  end

  local function set_sys_v(v)
    SYS_V = v
    redis.call('HSET', K_META, 'gv', vfmt(v))
  end

  FAIR_LIB = {
    gpending = gpending, glease = glease, ready_group = ready_group, file = file, freed = freed,
    vfmt = vfmt, sys_v = sys_v, set_sys_v = set_sys_v,
  }
  return FAIR_LIB
end

-- Put task `id` in pending with `score` (a string); on a fair queue also in its group's set. `g`
-- is its group when the caller knows it (enqueue), else it is looked up.
local function pend(score, id, g)
  redis.call('ZADD', K_PENDING, score, id)
  if FAIR then fair_lib().file(score, id, g) end
end

-- The same for many tasks: zargs = score, id pairs.
local function pend_many(zargs)
  if not FAIR then
    redis.call('ZADD', K_PENDING, unpack(zargs))
    return
  end
  for i = 1, #zargs, 2 do pend(zargs[i], zargs[i + 1]) end
end

-- A pending task left pending other than by being handed out (cancel): drop it from its group.
local function unpend_group(id)
  if FAIR then
    local g = redis.call('HGET', gkey('tgroup'), id) or DEFAULT_GROUP
    redis.call('ZREM', fair_lib().gpending(g), id)
  end
end

-- Leases of these tasks ended (acknowledged, released, cancelled): on a queue with group limits,
-- they leave their groups' lease sets, and a group parked by its cap is ready again.
local function groups_freed(ids)
  if GLIM and #ids > 0 then fair_lib().freed(ids) end
end

-- Remember the groups of new tasks (tasks of the default group are not listed).
local function set_groups(hargs)
  if #hargs > 0 then redis.call('HSET', gkey('tgroup'), unpack(hargs)) end
end
