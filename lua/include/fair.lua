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
-- (zset). Redis refuses any of them from another slot (scripts start with #!lua).
--@include args
--@include keys
--@include schema
--@include notify

local DEFAULT_GROUP = 'default'

-- After a fair pop: ms until the first parked group may run again, when it handed out fewer than
-- asked because groups were parked by their caps.
local FAIR_WAIT = nil

-- A key of the queue's groups, derived from the meta key (same hash tag, same slot): `groups`,
-- `gready`, `tgroup`, `gpark`, `gp:<group>`, `gl:<group>`.
local function gkey(role)
  return string.sub(K_META, 1, -5) .. role
end

-- The fair-queueing library, built on first use in a call: a queue that is not fair (or has no
-- group caps) never pays for defining these functions (Redis runs a script's whole body, and
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

  -- Make group g ready (it has pending work) unless it already is.
  local function ready_group(g)
    if redis.call('ZSCORE', gkey('gready'), g) then return end
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
  -- cap is ready again (the workers are woken once).
  local function freed(ids)
    local gs = redis.call('HMGET', gkey('tgroup'), unpack(ids))
    local by, order = {}, {}
    for i, id in ipairs(ids) do
      local g = gs[i] or DEFAULT_GROUP
      if not by[g] then
        by[g] = {}
        order[#order + 1] = g
      end
      local list = by[g]
      list[#list + 1] = id
    end
    local woke = false
    for _, g in ipairs(order) do
      redis.call('ZREM', glease(g), unpack(by[g]))
      if redis.call('ZREM', gkey('gpark'), g) == 1 then
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


-- The fair pop, built on first use in a call (claim and dispatch on a fair queue).
local POP_LIB = nil

local function pop_lib()
  if POP_LIB then return POP_LIB end
  local L = fair_lib()
  local gpending, glease, ready_group, vfmt, sys_v, set_sys_v =
    L.gpending, L.glease, L.ready_group, L.vfmt, L.sys_v, L.set_sys_v

  -- A binary heap of groups by their current virtual time (ties: their place in `gready`).
  local function heap_less(a, b)
    return a.cur < b.cur or (a.cur == b.cur and a.i < b.i)
  end

  local function heap_push(h, x)
    local c = #h + 1
    h[c] = x
    while c > 1 do
      local p = math.floor(c / 2)
      if not heap_less(h[c], h[p]) then break end
      h[c], h[p] = h[p], h[c]
      c = p
    end
  end

  local function heap_pop(h)
    local top, n = h[1], #h
    h[1] = h[n]
    h[n] = nil
    n = n - 1
    local c = 1
    while true do
      local l, r, m = 2 * c, 2 * c + 1, c
      if l <= n and heap_less(h[l], h[m]) then m = l end
      if r <= n and heap_less(h[r], h[m]) then m = r end
      if m == c then break end
      h[c], h[m] = h[m], h[c]
      c = m
    end
    return top
  end

  -- Group g's live leases (its lease set checked against `leased`; entries of ended or expired
  -- leases dropped): how many, and the earliest deadline among them.
  local function group_live(g, now)
    local members = redis.call('ZRANGE', glease(g), 0, -1)
    if #members == 0 then return 0, nil end
    local dl = redis.call('ZMSCORE', K_LEASED, unpack(members))
    local n, first, dead = 0, nil, {}
    for i, id in ipairs(members) do
      local d = tonumber(dl[i])
      if d and d > now then
        n = n + 1
        if first == nil or d < first then first = d end
      else
        dead[#dead + 1] = id
      end
    end
    if #dead > 0 then redis.call('ZREM', glease(g), unpack(dead)) end
    return n, first
  end

  -- Park group g (its cap is full) until `at` (Redis ms: the earliest deadline of its leases, when
  -- a slot frees at the latest; the end of one of its leases unparks it sooner): it leaves the
  -- ready set, keeping its virtual time.
  local function park_group(g, vt, at)
    redis.call('ZREM', gkey('gready'), g)
    redis.call('HSET', gkey('groups'), 'v:' .. g, vfmt(vt))
    redis.call('ZADD', gkey('gpark'), fmt(at), g)
  end


  -- Take up to k pending tasks, fairly across groups. Start-time fair queueing decides, on
  -- virtual times alone, how many of the k tasks each group gets — exactly what handing them out
  -- one by one would give (each next task to the group with the lowest virtual time, which then
  -- moves on by 1 / weight) — and then each chosen group is popped once. Only the k lowest groups
  -- of `gready` can be served in one call, so only they are read. A group with fewer tasks than
  -- its part leaves the ready set and the rest is shared again. Returns id, score pairs like
  -- ZPOPMIN; the tasks are out of `pending`. Cost: O(k log G + k log N), a few commands per group
  -- served, flat in the number of groups.
  local function pop_fair(k, now, lease_ms)
    local out = {}
    local served = nil
    FAIR_WAIT = nil
    local cap_default = 0
    if GCAP then
      cap_default = tonumber(redis.call('HGET', K_META, 'gc')) or 0
      -- parked groups whose time came are ready again
      local due = redis.call('ZRANGEBYSCORE', gkey('gpark'), '-inf', fmt(now), 'LIMIT', 0, MAX_BATCH)
      if #due > 0 then
        redis.call('ZREM', gkey('gpark'), unpack(due))
        for _, g in ipairs(due) do ready_group(g) end
      end
    end
    for _ = 1, 8 do -- another round only when a group ran out of tasks or was parked
      local left = k - #out / 2
      if left <= 0 then break end
      local top = redis.call('ZRANGE', gkey('gready'), 0, left - 1, 'WITHSCORES')
      if #top == 0 then break end
      local gs, wf = {}, {}
      for i = 1, #top, 2 do
        gs[#gs + 1] = {name = top[i], vt = tonumber(top[i + 1]), n = 0, i = #gs + 1, room = math.huge}
        wf[#wf + 1] = 'w:' .. top[i]
        if GCAP then wf[#wf + 1] = 'c:' .. top[i] end
      end
      local ws = redis.call('HMGET', gkey('groups'), unpack(wf))
      local step = GCAP and 2 or 1
      local h = {}
      for i, g in ipairs(gs) do
        g.w = tonumber(ws[step * (i - 1) + 1]) or 1
        g.cur = g.vt
        if GCAP then
          local cap = tonumber(ws[step * i]) or cap_default
          if cap > 0 then
            local live, first = group_live(g.name, now)
            g.room, g.first = cap - live, first
          end
        end
        if g.room > 0 then
          heap_push(h, g)
        else
          park_group(g.name, g.vt, g.first or (now + lease_ms))
        end
      end
      for _ = 1, left do
        if #h == 0 then break end
        local g = heap_pop(h)
        g.n = g.n + 1
        g.cur = g.cur + 1 / g.w
        if g.n < g.room then heap_push(h, g) end
      end
      for _, g in ipairs(gs) do
        if g.n > 0 then
          local got = redis.call('ZPOPMIN', gpending(g.name), g.n)
          local ids = {}
          for i = 1, #got, 2 do ids[#ids + 1] = got[i] end
          local m = 0
          local gone = {}
          if #ids > 0 then
            -- only ids still pending count (an entry left behind by a path that missed the index)
            local live = redis.call('ZMSCORE', K_PENDING, unpack(ids))
            for i, id in ipairs(ids) do
              if live[i] then
                out[#out + 1] = id
                out[#out + 1] = live[i]
                gone[#gone + 1] = id
                m = m + 1
              end
            end
            if #gone > 0 then redis.call('ZREM', K_PENDING, unpack(gone)) end
          end
          local capped = g.room ~= math.huge
          if capped and #gone > 0 then
            local z = {}
            for _, id in ipairs(gone) do
              z[#z + 1] = 0
              z[#z + 1] = id
            end
            redis.call('ZADD', glease(g.name), unpack(z))
          end
          local fin = g.vt + m / g.w
          if m > 0 then
            local last = g.vt + (m - 1) / g.w
            if served == nil or last > served then served = last end
          end
          if #ids == g.n and redis.call('ZCARD', gpending(g.name)) > 0 then
            if capped and m >= g.room then
              park_group(g.name, fin, math.min(g.first or math.huge, now + lease_ms))
            else
              redis.call('ZADD', gkey('gready'), vfmt(fin), g.name)
            end
          else
            redis.call('ZREM', gkey('gready'), g.name)
            redis.call('HSET', gkey('groups'), 'v:' .. g.name, vfmt(fin))
          end
        end
      end
    end
    if served and served > sys_v() then set_sys_v(served) end
    if GCAP and #out < 2 * k then
      local nxt = redis.call('ZRANGE', gkey('gpark'), 0, 0, 'WITHSCORES')
      if nxt[2] then FAIR_WAIT = math.max(1, tonumber(nxt[2]) - now) end
    end
    return out
  end

  POP_LIB = {pop = pop_fair}
  return POP_LIB
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

-- Leases of these tasks ended (acknowledged, released, cancelled): on a queue with group caps,
-- they leave their groups' lease sets, and a group parked by its cap is ready again.
local function groups_freed(ids)
  if GCAP and #ids > 0 then fair_lib().freed(ids) end
end

-- Remember the groups of new tasks (tasks of the default group are not listed).
local function set_groups(hargs)
  if #hargs > 0 then redis.call('HSET', gkey('tgroup'), unpack(hargs)) end
end
