-- include/fairpop.lua — the fair pop (claim, take and dispatch on a fair queue): the groups
-- with work share each hand-out by start-time fair queueing (include/fair.lua), and a group
-- held back by a limit of its own is parked, scored by when it is looked at again, so no claim
-- rescans it and the other groups go on.
--
-- A group's own limits (meta `gk` = '1' when any may exist), kept in the `groups` hash:
--   c:<g> its concurrency cap (else the queue's `gc`, configure's group_concurrency; 0 = none):
--         its live leases are counted against `leased` (its lease set gl:<g>), so a killed
--         worker's slots free themselves at its leases' deadlines
--   r:<g> its rate as µs between two tasks (else the queue's `gr`, group_rate; 0 = none), b:<g>
--         its burst (else `gb`), t:<g> its GCRA state (include/limits.lua: same arithmetic,
--         costs included)
--   h:<g> the limit that parked it last ('group_rate' or 'group_concurrency'): a park by another
--         limit than the last one is announced as a `held` event ("<limit>|<wait>|<group>") and
--         each park is counted (meta n_held_group_rate, n_held_group_concurrency)
-- The end of one of a capped group's leases readies it (include/fair.lua); a group parked by its
-- rate is looked at again when its park time comes.
--@include args
--@include keys
--@include schema
--@include notify
--@include fair
--@include events
--@include limits

-- The fair pop, built on first use in a call.
local POP_LIB = nil

local function pop_lib()
  if POP_LIB then return POP_LIB end
  local L, Q = fair_lib(), limits_lib()
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

  -- Park group g (a limit of its own holds it back: g.by) until `at` (Redis ms): it leaves the
  -- ready set, keeping its virtual time `vt`. A park by another limit than the group's last is
  -- announced by a `held` event.
  local function park_group(g, vt, at, now, worker)
    redis.call('ZREM', gkey('gready'), g.name)
    local f = {'v:' .. g.name, vfmt(vt)}
    if g.h ~= g.by then
      f[3], f[4] = 'h:' .. g.name, g.by
      local wait = g.by == 'group_rate' and math.max(1, at - now) or -1
      Q.emit_detail('held', worker, g.by .. '|' .. fmt(wait) .. '|' .. g.name, now)
    end
    redis.call('HSET', gkey('groups'), unpack(f))
    redis.call('HINCRBY', K_META, 'n_held_' .. g.by, 1)
    redis.call('ZADD', gkey('gpark'), fmt(at), g.name)
  end

  -- Group g's room in this call: how many tasks its own limits let go now (math.huge: no limit),
  -- and which limit sets it (g.by). `d` holds the queue's defaults for groups; no group gets
  -- more than `want` in this call, so a cap with room for more than that even if every lease in the
  -- group's set were alive is not looked at more closely.
  local function group_room(g, s, d, now, want)
    g.room = math.huge
    local cap = tonumber(s.c) or d.cap
    if cap > 0 then
      g.capped = true
      local held = redis.call('ZCARD', glease(g.name))
      if cap - held > want then
        g.room, g.by = cap - held, 'group_concurrency'
      else
        local live, first = group_live(g.name, now)
        g.room, g.by, g.first = cap - live, 'group_concurrency', first
      end
    end
    local T = tonumber(s.r) or d.T
    if T > 0 then
      g.T, g.B, g.tat = T, tonumber(s.b) or d.B, tonumber(s.t) or 0
      local n = Q.fits(g.tat, g.T, g.B)
      if n < g.room then g.room, g.by = n, 'group_rate' end
    end
  end

  -- When group g, held back by g.by, is looked at again: when its rate admits one task more (of
  -- `cost`: the task it could not take, else 1), or
  -- when a slot frees at the latest (the earliest deadline of its leases; the end of one of its
  -- leases readies it sooner).
  local function park_time(g, tat, now, lease_ms, cost)
    if g.by == 'group_rate' then return Q.ready_ms(tat, g.T, g.B, cost or 1) end
    return math.min(g.first or math.huge, now + lease_ms)
  end

  -- Take the n tasks of group g's pending set that are next, as far as the group's rate and the
  -- queue's rate admit their costs (`walk`: the costs are looked at), appending them to `out`
  -- (id, score pairs). Returns the ids taken, the group's new rate state, the cost of the task
  -- its rate could not take (nil when it did not cut the take short), whether the queue's rate
  -- did, and how many entries were looked at. Entries of tasks no longer pending are dropped.
  local function take_group(g, n, walk, out)
    local got
    if walk then
      got = redis.call('ZRANGE', gpending(g.name), 0, n - 1)
    else
      got = redis.call('ZPOPMIN', gpending(g.name), n)
      local ids = {}
      for i = 1, #got, 2 do ids[#ids + 1] = got[i] end
      got = ids
    end
    if #got == 0 then return {}, g.tat, nil, false, 0 end
    local live = redis.call('ZMSCORE', K_PENDING, unpack(got))
    local cs = walk and Q.costs_of(got) or nil
    local gone, tat, seen = {}, g.tat, #got
    local gcut, qcut = nil, false
    for i, id in ipairs(got) do
      if live[i] then
        if walk then
          local nt = tat
          if g.T then
            nt = Q.charge(tat, g.T, g.B, cs[i])
            if nt == nil then gcut = cs[i] end
          end
          if not gcut and not Q.take(cs[i]) then qcut = true end
          if gcut or qcut then
            seen = i - 1
            break
          end
          tat = nt
        end
        gone[#gone + 1] = id
        out[#out + 1] = id
        out[#out + 1] = live[i]
      end
    end
    if walk and seen > 0 then redis.call('ZREM', gpending(g.name), unpack(got, 1, seen)) end
    if #gone > 0 then redis.call('ZREM', K_PENDING, unpack(gone)) end
    if g.T and not walk and #gone > 0 then tat = math.max(g.tat, Q.now_us()) + #gone * g.T end
    return gone, tat, gcut, qcut, #got
  end

  -- Take up to k pending tasks, fairly across groups. Start-time fair queueing decides, on
  -- virtual times alone, how many of the k tasks each group gets — exactly what handing them out
  -- one by one would give (each next task to the group with the lowest virtual time, which then
  -- moves on by 1 / weight) — and then each chosen group is popped once. Only the k lowest groups
  -- of `gready` can be served in one call, so only they are read. A group with fewer tasks than
  -- its part leaves the ready set and the rest is shared again. Returns id, score pairs like
  -- ZPOPMIN; the tasks are out of `pending`. Cost: O(k log G + k log N), a few commands per group
  -- served, flat in the number of groups. `worker` names the caller in `held` events.
  local function pop_fair(k, now, lease_ms, worker)
    local out = {}
    local served = nil
    FAIR_WAIT = nil
    local d = {cap = 0, T = 0, B = 1}
    if GLIM then
      local m = redis.call('HMGET', K_META, 'gc', 'gr', 'gb')
      d.cap, d.T, d.B = tonumber(m[1]) or 0, tonumber(m[2]) or 0, tonumber(m[3]) or 1
      -- parked groups whose time came are ready again
      local due = redis.call('ZRANGEBYSCORE', gkey('gpark'), '-inf', fmt(now), 'LIMIT', 0, MAX_BATCH)
      if #due > 0 then
        redis.call('ZREM', gkey('gpark'), unpack(due))
        for _, g in ipairs(due) do ready_group(g) end
      end
    end
    local stop = false -- the queue's rate took no more costs
    for _ = 1, 8 do -- another round only when a group ran out of tasks or was parked
      local left = k - #out / 2
      if left <= 0 or stop then break end
      local top = redis.call('ZRANGE', gkey('gready'), 0, left - 1, 'WITHSCORES')
      if #top == 0 then break end
      local gs, wf = {}, {}
      local per = GLIM and 6 or 1
      for i = 1, #top, 2 do
        local name = top[i]
        gs[#gs + 1] = {name = name, vt = tonumber(top[i + 1]), n = 0, i = #gs + 1, room = math.huge}
        wf[#wf + 1] = 'w:' .. name
        if GLIM then
          wf[#wf + 1] = 'c:' .. name
          wf[#wf + 1] = 'r:' .. name
          wf[#wf + 1] = 'b:' .. name
          wf[#wf + 1] = 't:' .. name
          wf[#wf + 1] = 'h:' .. name
        end
      end
      local ws = redis.call('HMGET', gkey('groups'), unpack(wf))
      local h = {}
      for i, g in ipairs(gs) do
        local b = per * (i - 1)
        g.w = tonumber(ws[b + 1]) or 1
        g.cur = g.vt
        if GLIM then
          g.h = ws[b + 6]
          group_room(g, {c = ws[b + 2], r = ws[b + 3], b = ws[b + 4], t = ws[b + 5]}, d, now, left)
        end
        if g.room > 0 then
          heap_push(h, g)
        else
          park_group(g, g.vt, park_time(g, g.tat, now, lease_ms), now, worker)
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
        if g.n > 0 and not stop then
          local got, tat, gcut, qcut, looked = take_group(g, g.n, COSTS and (g.T ~= nil or Q.walks()), out)
          stop = qcut
          local m = #got
          if g.T and m > 0 then redis.call('HSET', gkey('groups'), 't:' .. g.name, fmt(tat)) end
          if g.capped and m > 0 then
            local z = {}
            for _, id in ipairs(got) do
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
          if gcut then g.by = 'group_rate' end
          if gcut or qcut or (looked == g.n and redis.call('ZCARD', gpending(g.name)) > 0) then
            if gcut or m >= g.room then
              park_group(g, fin, park_time(g, tat, now, lease_ms, gcut), now, worker)
            else
              redis.call('ZADD', gkey('gready'), vfmt(fin), g.name)
              if g.h then redis.call('HDEL', gkey('groups'), 'h:' .. g.name) end
            end
          else
            redis.call('ZREM', gkey('gready'), g.name)
            redis.call('HSET', gkey('groups'), 'v:' .. g.name, vfmt(fin))
            if g.h then redis.call('HDEL', gkey('groups'), 'h:' .. g.name) end
          end
        end
      end
    end
    if served and served > sys_v() then set_sys_v(served) end
    if GLIM and #out < 2 * k then
      local nxt = redis.call('ZRANGE', gkey('gpark'), 0, 0, 'WITHSCORES')
      if nxt[2] then FAIR_WAIT = math.max(1, tonumber(nxt[2]) - now) end
    end
    return out
  end

  POP_LIB = {pop = pop_fair}
  return POP_LIB
end

-- Pop up to k pending tasks (id, score pairs) as the queue's order and limits say: fairly across
-- groups on a fair queue, by their costs under the queue's rate, or else plainly by priority.
local function pop_pending(k, now, lease_ms, worker)
  if FAIR then return pop_lib().pop(k, now, lease_ms, worker) end
  if FLOW and limits_lib().walks() then return limits_lib().pop_costed(k) end
  return redis.call('ZPOPMIN', K_PENDING, k)
end
