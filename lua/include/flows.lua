-- include/flows.lua — flows and batches: a set of tasks of one queue kept together, so that a
-- whole DAG can be submitted at once (its first tasks held until the flow is sealed), followed
-- (`flow_status`), cancelled as one, grown by its own running tasks, and followed by callback
-- tasks enqueued exactly once: on_success (every member done), on_complete (every member
-- finished, however) and on_death (the first member that ended dead).
--
-- Keys, derived from the meta key like the dependency keys (same hash tag, same slot; role `wf`
-- in headers): `<prefix>:{q}:fl:<flow>` (hash: `#state` open|sealed|complete|cancelled, `#gated`
-- '1' when the first tasks wait for the seal, `#total` members, `#done` `#dead` `#cancelled`
-- members that ended so, `#created` ms, `#ended` ms, `#ttl` ms the bookkeeping is kept once the
-- flow has ended, `#death` the first member that ended dead; per node name `n:<name>` = its task
-- id; per callback event `cb:<event>` = the callback's record middle (kind|priority|...|),
-- `cp:<event>` its payload, `cg:<event>` its group, `fired:<event>` = the callback task's id once
-- enqueued), `<prefix>:{q}:fm:<flow>` (list: "<id> <name>" per member, in the order they joined)
-- and `<prefix>:{q}:tflow` (hash: member task id -> its flow, while the member has not ended).
-- Members on other queues (include/outbox.lua): in the flow's queue they are "<queue>/<id>"
-- (in `fm`, `tflow`, `n:<name>`, and `r:<queue>/<id>` = '1' once counted, by flow_join); in
-- their own queue `tflow` maps them to "<flow's queue>/<flow>", and their end is told to the
-- flow's queue through the outbox ("f" messages, counted there by deliver).
-- Meta `fw` = '1' once the queue had a flow (read with the schema), so queues without flows pay
-- nothing when tasks end.
--@include args
--@include keys
--@include schema
--@include record
--@include notify
--@include fair
--@include events
--@include outbox

-- Most members one flow may have (the bound of flow_open's `size`; docs/contract.md).
local FLOW_MAX_TASKS = 100000
-- The callback events, in the order flow_open takes them.
local FLOW_EVENTS = {'on_success', 'on_complete', 'on_death'}

local function flow_key(f)
  return wkey('fl:' .. f)
end

local function flow_members_key(f)
  return wkey('fm:' .. f)
end

-- The flow's callback for `event` is enqueued, once: a task of this queue with the id
-- "<flow>.<event>" (HSETNX on `fired:<event>` makes a second call a no-op). Returns its id or nil.
local function flow_fire(f, event, now)
  local fk = flow_key(f)
  local cb = redis.call('HMGET', fk, 'cb:' .. event, 'cp:' .. event, 'cg:' .. event)
  if not cb[1] then return nil end
  local id = f .. '.' .. event
  if redis.call('HSETNX', fk, 'fired:' .. event, id) == 0 then return nil end
  local rec = '0|0|0|0|' .. cb[1] .. fmt(now) .. '|' .. (cb[2] or '')
  if redis.call('HSETNX', K_TASKS, id, rec) == 0 then return id end
  local prio = tonumber(string.match(cb[1], '^[^|]*|(-?%d+)|')) or 0
  local was_empty = redis.call('ZCARD', K_PENDING) == 0
  local g = cb[3] or DEFAULT_GROUP
  if g ~= DEFAULT_GROUP then set_groups({id, g}) end
  pend(fmt(pending_score(prio, take_seq(1), now)), id, g)
  wake_pending(was_empty)
  redis.call('HINCRBY', K_META, 'n_enq', 1)
  local items = {}
  ev_add(items, id, 0)
  emit('enqueued', '', items, now)
  return id
end

-- The flow may have ended (sealed, and every member finished): mark it complete, enqueue its
-- on_complete callback and, when every member is done, its on_success callback; from then on its
-- bookkeeping is kept `#ttl` ms. A cancelled flow fires nothing and is kept as long once ended.
local function flow_check_end(f, now)
  local fk = flow_key(f)
  local h = redis.call('HMGET', fk, '#state', '#total', '#done', '#dead', '#cancelled', '#ttl')
  local state = h[1]
  if state ~= 'sealed' and state ~= 'cancelled' then return end
  local done, dead, cancelled = tonumber(h[3]) or 0, tonumber(h[4]) or 0, tonumber(h[5]) or 0
  if done + dead + cancelled < (tonumber(h[2]) or 0) then return end
  if state == 'sealed' then
    redis.call('HSET', fk, '#state', 'complete', '#ended', fmt(now))
    flow_fire(f, 'on_complete', now)
    if dead + cancelled == 0 then flow_fire(f, 'on_success', now) end
  elseif not redis.call('HGET', fk, '#ended') then
    redis.call('HSET', fk, '#ended', fmt(now))
  end
  local ttl = tonumber(h[6])
  if ttl then
    redis.call('PEXPIRE', fk, ttl)
    redis.call('PEXPIRE', flow_members_key(f), ttl)
  end
end

-- Members of flow f ended: c = {done = n, dead = n, cancelled = n, death = first dead id or nil}.
-- Counts them, enqueues on_death at the flow's first death, and ends the flow if they were its last.
local function flow_count(f, c, now)
  local fk = flow_key(f)
  for _, o in ipairs({'done', 'dead', 'cancelled'}) do
    if c[o] > 0 then redis.call('HINCRBY', fk, '#' .. o, c[o]) end
  end
  if c.death and redis.call('HSETNX', fk, '#death', c.death) == 1 then
    if redis.call('HGET', fk, '#state') ~= 'cancelled' then flow_fire(f, 'on_death', now) end
  end
  flow_check_end(f, now)
end

-- Tasks ended (`ends`: list of {id, outcome}, outcome 'done', 'dead' or 'cancelled'): count
-- them in their flows (each member once: it leaves `tflow` here), fire on_death at a flow's
-- first death, and end the flows whose last member this was.
local function flows_final(ends, now)
  if not FLOWS or #ends == 0 then return end
  local tflow = wkey('tflow')
  local per = {}   -- flow -> {done = n, dead = n, cancelled = n, death = first dead id}
  local order = {}
  local gone = {}
  for s = 1, #ends, 1000 do -- unpack takes a few thousand values at most
    local ids = {}
    for j = s, math.min(s + 999, #ends) do ids[#ids + 1] = ends[j][1] end
    local fs = redis.call('HMGET', tflow, unpack(ids))
    for j, f in ipairs(fs) do
      local fq, ff
      if f then fq, ff = remote_ref(f) end
      if fq then
        -- a member of a flow of another queue: tell that queue how it ended
        local e = ends[s + j - 1]
        outbox_put(fq, 'f', ff, QUEUE_NAME .. '/' .. e[1] .. '|' .. e[2])
        gone[#gone + 1] = e[1]
      elseif f then
        local e = ends[s + j - 1]
        local c = per[f]
        if not c then
          c = {done = 0, dead = 0, cancelled = 0}
          per[f] = c
          order[#order + 1] = f
        end
        c[e[2]] = c[e[2]] + 1
        if e[2] == 'dead' and not c.death then c.death = e[1] end
        gone[#gone + 1] = e[1]
      end
    end
  end
  if #gone == 0 then return end
  for s = 1, #gone, 1000 do
    redis.call('HDEL', tflow, unpack(gone, s, math.min(s + 999, #gone)))
  end
  for _, f in ipairs(order) do flow_count(f, per[f], now) end
  outbox_flush()
end
