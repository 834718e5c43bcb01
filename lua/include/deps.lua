-- include/deps.lua — dependencies between tasks of one queue. A task enqueued `after` other
-- tasks waits in the state set `waiting` until every one of them has finished; the script that
-- finishes the last one makes it pending in the same call. Per task a failure policy says what
-- a dependency that ended dead or cancelled does to it: `fail` (it is not run: it ends as that
-- dependency did, dead or cancelled, with a reason naming it, and so do its own dependents),
-- `continue` (it runs, and can read which failed) or `ignore`.
--
-- Keys, derived from the meta key like the group keys (same hash tag, same slot; the `wf` role
-- in headers): `<prefix>:{q}:waiting` (zset: the waiting tasks by creation ms — a state set
-- beside the keyset's six), `<prefix>:{q}:wx:<id>` (hash of a waiting or once-waiting task:
-- `#left` dependencies not finished yet, `#pol` its policy, `#ttl` ms it is kept if it ends
-- unrun, and per dependency id `w` (waiting for it) or how it ended: `done`, `dead`,
-- `cancelled`), `<prefix>:{q}:wo:<id>` (list: the tasks waiting for task id). Meta `wf` = '1'
-- once any task had dependencies (read with the schema), so queues without them pay nothing.
--
-- Across queues (include/outbox.lua): a dependency on task Y of queue A is named "A/Y". In the
-- dependent's queue it is kept like a local one (field "A/Y" of `wx:<id>`, the dependent in the
-- list `wo:A/Y`) and a watch message goes to A; in A the watcher is an entry "B/X" of `wo:Y`.
-- When Y ends (or the watch finds it ended), A's outbox tells B, whose `deliver` settles every
-- task of B waiting for "A/Y" exactly as a local end would.
--@include args
--@include keys
--@include schema
--@include record
--@include notify
--@include fair
--@include events
--@include flows
--@include outbox

-- Most dependencies one task may have, and how long a task that ends unrun because of a failed
-- dependency is kept when the enqueue does not say (7 days, the default dead_ttl).
local MAX_AFTER = 10000
local DEFAULT_UNRUN_TTL = 604800000

-- The dependency library, built on first use in a call (queues without dependencies never
-- define these functions).
local DEPS_LIB = nil

local function deps_lib()
  if DEPS_LIB then return DEPS_LIB end

  -- Task w ends unrun because its dependency `dep` ended `outcome` ('dead' or 'cancelled') under
  -- policy fail: it ends the same way, kept ttl ms, the reason as its last error.
  local function end_unrun(w, outcome, dep, ttl, now)
    if outcome == 'dead' then
      redis.call('ZADD', K_DEAD, fmt(now + ttl), w)
    else
      redis.call('ZADD', K_CANCELLED, fmt(now + ttl), w)
    end
    -- '#<flow>' (or '<queue>/#<flow>'): the seal of a flow
    local gate = string.match(dep, '^[^/]*/?#(.+)$')
    local why = gate and ('flow ' .. gate .. ' was cancelled before it was sealed')
      or ('dependency ' .. dep .. ' ended ' .. outcome .. ' (on_failure fail)')
    redis.call('HSET', K_ERRORS, w, '0|' .. fmt(now) .. '|' .. why .. ': not run')
  end

  -- The waiting task w may run: it leaves `waiting` and becomes pending (fair queues: in its
  -- group too), ordered by its priority as a task enqueued now.
  local function release(w, now)
    local rec = redis.call('HGET', K_TASKS, w)
    local t = rec and parse_record(rec)
    if not t then return false end
    local was_empty = redis.call('ZCARD', K_PENDING) == 0
    pend(fmt(pending_score(t.prio, take_seq(1), now)), w)
    wake_pending(was_empty)
    return true
  end

  -- Tasks ended (`ends`: list of {id, outcome[, force]}, outcome 'done', 'dead' or
  -- 'cancelled'): settle the tasks waiting for them. A dependent whose last dependency ended is
  -- released; one whose dependency failed under policy `fail` (or under any policy when the end
  -- is forced: a cancelled flow's seal) ends the same way (dead or cancelled) with the reason,
  -- and is settled in turn. Returns the ids released and, per outcome, the ids that ended here.
  local function settle(ends, now)
    local released, ended = {}, {dead = {}, cancelled = {}}
    local i = 1
    while i <= #ends do
      local id, outcome, force = ends[i][1], ends[i][2], ends[i][3]
      i = i + 1
      local wo = wkey('wo:' .. id)
      local kids = redis.call('LRANGE', wo, 0, -1)
      if #kids > 0 then redis.call('DEL', wo) end
      local told = {}
      for _, w in ipairs(kids) do
        local wq = remote_ref(w)
        if wq then
          -- a task of another queue waits for this one: tell its queue, once per queue
          if not told[wq] then
            told[wq] = true
            outbox_put(wq, 's', QUEUE_NAME .. '/' .. id, outcome)
          end
        else
          local wx = wkey('wx:' .. w)
          local f = redis.call('HMGET', wx, id, '#pol', '#ttl')
          if f[1] == 'w' then
            redis.call('HSET', wx, id, outcome)
            if outcome ~= 'done' and (f[2] == 'fail' or force) then
              if redis.call('ZREM', wkey('waiting'), w) == 1 then
                end_unrun(w, outcome, id, tonumber(f[3]) or DEFAULT_UNRUN_TTL, now)
                local list = ended[outcome]
                list[#list + 1] = w
                ends[#ends + 1] = {w, outcome, force}
              end
            elseif redis.call('HINCRBY', wx, '#left', -1) <= 0 then
              if redis.call('ZREM', wkey('waiting'), w) == 1 and release(w, now) then
                released[#released + 1] = w
              end
            end
          end
        end
      end
    end
    return released, ended
  end

  DEPS_LIB = {settle = settle, release = release, end_unrun = end_unrun}
  return DEPS_LIB
end

-- Settle what waits for these ends ({id, outcome[, force]}: tasks of this queue, or "A/Y"
-- names of tasks of other queues told by their outbox) and announce it: those released by a
-- `ready` event; those that end here because of a failure are counted, announced and told to
-- waiters. Members of flows among them are counted in their flows.
local function deps_settle(ends, now)
  local ready, ended = deps_lib().settle(ends, now)
  flows_final(ends, now) -- settle appended the dependents that ended
  if #ready > 0 then
    local items = {}
    for _, w in ipairs(ready) do ev_add(items, w, 0) end
    emit('ready', '', items, now)
  end
  for _, o in ipairs({'dead', 'cancelled'}) do
    local list = ended[o]
    if #list > 0 then
      if o == 'dead' then redis.call('HINCRBY', K_META, 'n_dead', #list) end
      notify_final(list)
      local items = {}
      for _, w in ipairs(list) do ev_add(items, w, 0) end
      emit(o, '', items, now)
    end
  end
  outbox_flush()
end

-- Tasks reached a final state by `outcome` ('done', 'dead', 'cancelled'): tell result waiters,
-- and on a queue with dependencies settle the tasks waiting for them (deps_settle), here or, for
-- tasks of other queues, through the outbox. Members of flows are counted in their flows
-- (include/flows.lua), the ended dependents with them. Every script that makes a task final
-- calls this; `force` (the gate of a cancelled flow) ends the dependents whatever their policy.
local function task_final(ids, outcome, now, force)
  notify_final(ids)
  if (not DEPS and not FLOWS) or #ids == 0 then return end
  local ends = {}
  for i, id in ipairs(ids) do ends[i] = {id, outcome, force} end
  now = now or now_ms()
  if not DEPS then
    flows_final(ends, now)
    return
  end
  deps_settle(ends, now)
end
