#!lua
--[[
name: enqueue
version: 2
purpose: Add one task or an atomic batch of tasks (all or none) to a queue, as pending or delayed.
  A task may carry an idempotency key (the first task's id answers repeats within its TTL) and a
  unique key (the id of a task holding it answers repeats while that task is pending, delayed,
  waiting or leased; once it has finished in any way, the key is free again) and a debounce key (repeats
  while the task holding it is still delayed replace its payload and push its run time back to
  now + window, never past max_wait after its creation).
keys:
  1-18: the queue keyset
  18..: per task, in task order: its idempotency key (<prefix>:{queue}:idem:<key>) when
    idem_ttl_ms > 0, then its unique key (<prefix>:{queue}:uniq:<key>) when unique_ttl_ms > 0,
    then its debounce key (<prefix>:{queue}:deb:<key>) when debounce_ms > 0;
    each is checked (this queue's prefix, a string or absent) before the first write
touches: meta(rw) tasks(rw) pending(rw) delayed(rw) leased(r) done(r) dead(rw) cancelled(rw)
  errors(w) events(w) groups(rw) idem(rw) wf(rw)
argv:
  1: max_payload (int, 0..536870912; bytes) — refuse any payload larger than this
  2: n (int, 1..1000) — number of tasks
  then n groups of 14 fields:
    id (string, 1-128 of [A-Za-z0-9-_:.]; made by the caller so a retried call is idempotent)
    kind (string, 1-128 of [A-Za-z0-9-_:.])
    payload (bytes)
    priority (int, -1000..1000; higher runs first, FIFO within a priority)
    delay_ms (int, 0..MAX_MS; 0 = pending now)
    max_attempts (int, 1..1000000)
    backoff (string, "f" fixed or "e" exponential)
    backoff_base_ms (int, 0..MAX_MS)
    backoff_cap_ms (int, backoff_base_ms..MAX_MS)
    jitter_pct (int, 0..100; share of the delay removed at random)
    timeout_ms (int, 0..MAX_MS; execution timeout, 0 = none)
    result_ttl_ms (int, 0..MAX_MS; how long result and record stay after completion; 0 = drop at once)
    idem_ttl_ms (int, 0..MAX_MS; > 0 = the task has an idempotency key in KEYS, kept this long)
    options (string; "" = none) — the task's rarer settings, comma-separated name=value, each at
      most once:
      unique_ttl_ms (int, 0..MAX_MS; > 0 = the task has a unique key in KEYS: while the task
        holding it is pending, delayed, waiting or leased, a task with the same key is not enqueued; the key
        lapses after this long even if its task is still waiting)
      debounce_ms (int, 0..MAX_MS; > 0 = the task has a debounce key in KEYS: it runs this long
        after the last enqueue with the key; delay_ms must be 0)
      max_wait_ms (int, 0..MAX_MS; with debounce_ms: the latest run time is creation + this;
        default and least: debounce_ms)
      expires_in_ms (int, 0..MAX_MS; > 0 = no run of the task starts later than this after now:
        claim and take send it to the dead-letter set instead)
      group (string, 1-128 of [A-Za-z0-9-_:.]; absent = "default") — the task's group (tenant,
        customer, API key): on a fair queue (configure) claim and dispatch share the work
        between the groups that have some (include/fair.lua)
      cost (int, 1..1000000; absent = 1) — what the task counts for under the rate limits of
        its queue and group (include/limits.lua): a task of cost c takes c tasks' room; one
        costing more than a limit's burst goes when that limit is idle, charged its whole cost
      after (string, 1..10000 task ids joined by "+") — the task's dependencies
        (include/deps.lua): each a task of this queue still known or one earlier in this call
        (else BADARG, nothing written), or "<queue>/<id>", a task of another queue of the same
        prefix (include/outbox.lua: not checked here, the caller checks it exists; one that
        queue no longer knows when the watch reaches it counts as dead); the task waits (state
        waiting) until all have finished, then becomes pending; no delay or debounce with it
      on_failure (string, "fail", "continue" or "ignore"; absent = "fail") — with after: what a
        dependency that ended dead or cancelled does: fail ends the task the same way, unrun
      unrun_ttl_ms (int, 1..MAX_MS; absent = 7 days) — with after: how long the task is kept
        when it ends unrun because a dependency failed
      flow (string, 1-128 of [A-Za-z0-9-_:.]) — the flow or batch the task joins
        (include/flows.lua; flow_open made it): it must be open, or with spawned_by the running
        task's own flow even once sealed; the task is counted in the flow in this call, before
        anyone can see it; in a flow submitted whole (gated) a task with no dependency among
        the flow's tasks waits for the seal (no delay or debounce then); at most
        FLOW_MAX_TASKS tasks per flow
      name (string, 1-128 of [A-Za-z0-9-_:.]) — with flow: the task's name in its flow, unique
        there
      spawned_by (string, 1-128 of [A-Za-z0-9-_:.]) — the running (leased) task adding this one
        (dynamic fan-out): the task joins that task's flow, if any, and every task still waiting
        for that task waits for this one too
reply: flat array, per task: id, created (1 = new task, 0 = duplicate: the id returned is the
  task that already holds this idempotency key or this id, 2 = duplicate of a forgotten task: the
  key still maps to that id, but the task finished and is no longer kept, 3 = the unique key is
  held: the id returned is the active task holding it, 4 = debounced: the id returned is the
  delayed task holding the debounce key, which now carries this payload and runs at
  min(now + debounce_ms, its creation + max_wait_ms); nothing was enqueued for 0, 2, 3 and 4)
errors:
  BADARG: a field is missing or out of range, a dependency, flow or spawning task is unknown or
    in the wrong state (message names it); nothing was written
  TOOLARGE: a payload exceeds max_payload; nothing was written
  VERSION: the queue holds another data schema version
bound: O(n log N) for n <= 1000 tasks
  measured worst (cargo bench --bench worst_case, n = 1000, events on, 2-core VM): about 13-28 ms per call
]]
--@include args
--@include keys
--@include schema
--@include record
--@include notify
--@include events
--@include fair
--@include outbox
--@include flows
--@include deps

local max_payload = int_arg(ARGV[1], 'max_payload', 0, 536870912)
local n = int_arg(ARGV[2], 'n', 1, MAX_BATCH)
local F = 14
if #ARGV ~= 2 + n * F then
  bail('BADARG', 'expected ' .. (2 + n * F) .. ' arguments for ' .. n .. ' tasks, got ' .. #ARGV)
end

-- Validate everything before the first write (the schema stamp of a new queue included).
local IDEM_BASE = CHAN_BASE .. 'idem:'
local UNIQ_BASE = CHAN_BASE .. 'uniq:'
local DEB_BASE = CHAN_BASE .. 'deb:'
local tasks = {}
local idem_i = NKEYS
-- The extra key KEYS[i] of task `id`: present, of this queue (`base` .. '<key>'), a string or absent.
-- Other languages pass these keys themselves: one that is not such a key of this queue (say, its
-- tasks hash) would fail with WRONGTYPE after earlier tasks were written.
local function key_of(i, base, id, ttl_arg, what)
  local xkey = KEYS[i]
  if xkey == nil then
    bail('BADARG', 'task ' .. id .. ' has ' .. ttl_arg .. ' > 0 but KEYS[' .. i .. '] is missing: pass ' .. what .. ' there')
  end
  if string.sub(xkey, 1, #base) ~= base or #xkey == #base then
    bail('BADARG', 'KEYS[' .. i .. '] must be ' .. what .. ' of this queue (' .. base .. '<key>), got ' .. xkey)
  end
  local kt = redis.call('TYPE', xkey)['ok']
  if kt ~= 'none' and kt ~= 'string' then
    bail('BADARG', 'KEYS[' .. i .. '] (' .. xkey .. ') holds a ' .. kt .. ', not ' .. what)
  end
  return xkey
end

-- A task's options string ("name=value,..."): the rarer settings, kept out of the fixed fields
-- so that tasks without them cost no extra arguments. Sets t.ut, t.dw, t.mw, t.ex when > 0, t.group,
-- and t.cost when above 1.
local function task_options(t, s)
  local seen = {}
  for part in string.gmatch(s .. ',', '([^,]*),') do
    local name, v = string.match(part, '^([%w_]+)=(.*)$')
    if name == nil or seen[name] then
      bail('BADARG', 'task ' .. t.id .. ': options must be comma-separated name=value, each name once, got ' .. s)
    end
    seen[name] = true
    local n
    if name == 'unique_ttl_ms' then n = int_arg(v, 'unique_ttl_ms', 0, MAX_MS) t.ut = n > 0 and n or nil
    elseif name == 'debounce_ms' then n = int_arg(v, 'debounce_ms', 0, MAX_MS) t.dw = n > 0 and n or nil
    elseif name == 'max_wait_ms' then n = int_arg(v, 'max_wait_ms', 0, MAX_MS) t.mw = n > 0 and n or nil
    elseif name == 'expires_in_ms' then n = int_arg(v, 'expires_in_ms', 0, MAX_MS) t.ex = n > 0 and n or nil
    elseif name == 'group' then t.group = id_arg(v, 'group')
    elseif name == 'cost' then n = int_arg(v, 'cost', 1, 1000000) t.cost = n > 1 and n or nil
    elseif name == 'after' then
      t.after = {}
      for dep in string.gmatch(v, '[^+]+') do
        local rq, rid = remote_ref(dep)
        if rq then
          id_arg(rq, 'the queue of a dependency (after)')
          -- "<queue>/#<flow>": the seal of a flow of that queue (its members there wait for it)
          ref_id_arg(rid, 'after')
          if rq == QUEUE_NAME then dep = rid end
        else
          id_arg(dep, 'after')
        end
        t.after[#t.after + 1] = dep
      end
      if #t.after == 0 or #t.after > MAX_AFTER then
        bail('BADARG', 'task ' .. t.id .. ': after must list 1..' .. MAX_AFTER .. ' task ids joined by "+", got ' .. #t.after)
      end
    elseif name == 'on_failure' then
      if v ~= 'fail' and v ~= 'continue' and v ~= 'ignore' then
        bail('BADARG', 'task ' .. t.id .. ': on_failure must be fail, continue or ignore, got ' .. v)
      end
      t.pol = v
    elseif name == 'unrun_ttl_ms' then t.uttl = int_arg(v, 'unrun_ttl_ms', 1, MAX_MS)
    elseif name == 'flow' then
      local fq, ff = remote_ref(v)
      if fq then
        -- a flow of another queue (its bookkeeping lives there; flow_join counted this task)
        id_arg(fq, 'the queue of flow')
        id_arg(ff, 'flow')
        t.flow = fq == QUEUE_NAME and ff or v
      else
        t.flow = id_arg(v, 'flow')
      end
    elseif name == 'name' then t.name = id_arg(v, 'name')
    elseif name == 'spawned_by' then t.parent = id_arg(v, 'spawned_by')
    else
      bail('BADARG', 'task ' .. t.id .. ': unknown option ' .. name ..
        ' (known: unique_ttl_ms, debounce_ms, max_wait_ms, expires_in_ms, group, cost, after, on_failure,' ..
        ' unrun_ttl_ms, flow, name, spawned_by)')
    end
  end
  if t.name and not t.flow then
    bail('BADARG', 'task ' .. t.id .. ': name goes with flow (a task\'s name within its flow)')
  end
  if t.after then
    t.pol = t.pol or 'fail'
    t.uttl = t.uttl or DEFAULT_UNRUN_TTL
    if t.delay > 0 or t.dw then
      bail('BADARG', 'task ' .. t.id .. ': a task with dependencies (after) takes no delay or debounce: it runs when they finish')
    end
  elseif t.pol or t.uttl then
    bail('BADARG', 'task ' .. t.id .. ': on_failure and unrun_ttl_ms go with after')
  end
  if t.dw then
    t.mw = t.mw or t.dw
    if t.mw < t.dw then
      bail('BADARG', 'task ' .. t.id .. ': max_wait_ms (' .. t.mw .. ') must be at least debounce_ms (' .. t.dw .. ')')
    end
    if t.delay > 0 then
      bail('BADARG', 'task ' .. t.id .. ': delay_ms must be 0 for a debounced task (debounce_ms sets its run time), got ' .. t.delay)
    end
  end
end

-- A batch usually repeats one policy (priority, attempts, backoff, timeouts) for every task: a
-- task whose 10 policy fields are the very same strings as the task before it reuses that task's
-- checked values and record middle (Lua strings are interned: comparing them is a pointer test).
local any_after = false -- some task has dependencies
local prev, prev_b
for i = 0, n - 1 do
  local b = 2 + i * F
  local t = {}
  t.id = id_arg(ARGV[b + 1], 'id')
  t.kind = id_arg(ARGV[b + 2], 'kind')
  t.payload = ARGV[b + 3]
  if #t.payload > max_payload then
    bail('TOOLARGE', 'payload of task ' .. t.id .. ' is ' .. #t.payload .. ' bytes, over the limit of ' ..
      max_payload .. ' (queue max_payload): store large data elsewhere and enqueue a reference')
  end
  local same = prev ~= nil
  if same then
    for k = 4, 14 do
      if ARGV[b + k] ~= ARGV[prev_b + k] then same = false break end
    end
  end
  if same then
    t.prio, t.delay, t.ma, t.bo, t.base, t.cap = prev.prio, prev.delay, prev.ma, prev.bo, prev.base, prev.cap
    t.jit, t.to, t.rt, t.it, t.ut, t.mid = prev.jit, prev.to, prev.rt, prev.it, prev.ut, prev.mid
    t.dw, t.mw, t.ex, t.group, t.cost = prev.dw, prev.mw, prev.ex, prev.group, prev.cost
    t.after, t.pol, t.uttl = prev.after, prev.pol, prev.uttl
    t.flow, t.parent, t.name = prev.flow, prev.parent, prev.name
  else
    t.prio = int_arg(ARGV[b + 4], 'priority', -PRIO_MAX, PRIO_MAX)
    t.delay = int_arg(ARGV[b + 5], 'delay_ms', 0, MAX_MS)
    t.ma = int_arg(ARGV[b + 6], 'max_attempts', 1, 1000000)
    t.bo = ARGV[b + 7]
    if t.bo ~= 'f' and t.bo ~= 'e' then
      bail('BADARG', 'backoff must be "f" (fixed) or "e" (exponential), got ' .. tostring(t.bo))
    end
    t.base = int_arg(ARGV[b + 8], 'backoff_base_ms', 0, MAX_MS)
    t.cap = int_arg(ARGV[b + 9], 'backoff_cap_ms', t.base, MAX_MS)
    t.jit = int_arg(ARGV[b + 10], 'jitter_pct', 0, 100)
    t.to = int_arg(ARGV[b + 11], 'timeout_ms', 0, MAX_MS)
    t.rt = int_arg(ARGV[b + 12], 'result_ttl_ms', 0, MAX_MS)
    t.it = int_arg(ARGV[b + 13], 'idem_ttl_ms', 0, MAX_MS)
    if ARGV[b + 14] ~= '' then task_options(t, ARGV[b + 14]) end
    -- the record between kind and payload (created_ms is added at write time)
    t.mid = '|' .. t.prio .. '|' .. t.ma .. '|' .. t.bo .. '|' .. fmt(t.base) .. '|' .. fmt(t.cap) .. '|' ..
      t.jit .. '|' .. fmt(t.to) .. '|' .. fmt(t.rt) .. '|'
    prev, prev_b = t, b
  end
  if t.it > 0 then
    idem_i = idem_i + 1
    t.idem = key_of(idem_i, IDEM_BASE, t.id, 'idem_ttl_ms', 'an idempotency key')
  end
  if t.ut then
    idem_i = idem_i + 1
    t.uniq = key_of(idem_i, UNIQ_BASE, t.id, 'unique_ttl_ms', 'a unique key')
  end
  if t.dw then
    idem_i = idem_i + 1
    t.deb = key_of(idem_i, DEB_BASE, t.id, 'debounce_ms', 'a debounce key')
  end
  tasks[i + 1] = t
  if t.after then any_after = true end
end
-- Dependencies must be tasks of this queue still known (or tasks earlier in this batch): an
-- unknown id is refused before anything is written. A task never depends on itself or on a
-- later task of the batch, so no cycle can be written.
local in_batch = {}
for _, t in ipairs(any_after and tasks or {}) do
  if t.after then
    for _, dep in ipairs(t.after) do
      if not in_batch[dep] and not remote_ref(dep) and redis.call('HEXISTS', K_TASKS, dep) == 0 then
        bail('BADARG', 'task ' .. t.id .. ': unknown dependency ' .. dep .. ' (after): no such task in this queue' ..
          (dep == t.id and ' (a task cannot depend on itself)' or ' (or it finished and is no longer kept)'))
      end
    end
  end
  in_batch[t.id] = true
end
-- Flows (include/flows.lua): a task joins a flow that is open, or, added by a running task
-- (spawned_by), the flow of that task even once sealed; a name is unique within its flow; a
-- flow never has more than FLOW_MAX_TASKS members. In a flow submitted whole (gated), a task
-- with no dependency among the flow's tasks waits for the seal. All checked before any write.
local flows_seen, flow_list, names_seen, in_flow = {}, {}, {}, {}
for _, t in ipairs(tasks) do
  if t.parent then
    if not redis.call('ZSCORE', K_LEASED, t.parent) then
      bail('BADARG', 'task ' .. t.id .. ': spawned_by ' .. t.parent .. ' is not running: only a running task adds' ..
        ' tasks to its flow and to what waits for it')
    end
    local pf = redis.call('HGET', wkey('tflow'), t.parent)
    if t.flow and t.flow ~= pf then
      bail('BADARG', 'task ' .. t.id .. ': spawned_by ' .. t.parent .. ' is not a task of flow ' .. t.flow)
    end
    t.flow = pf or nil
    if t.flow and remote_ref(t.flow) then
      bail('BADARG', 'task ' .. t.id .. ': spawned_by ' .. t.parent .. ' is a task of flow ' .. t.flow ..
        ' of another queue: a running task adds tasks only to a flow of its own queue')
    end
  end
  if t.flow and remote_ref(t.flow) then
    t.rflow = true
  elseif t.flow then
    local fs = flows_seen[t.flow]
    if not fs then
      local h = redis.call('HMGET', flow_key(t.flow), '#state', '#gated', '#total')
      if not h[1] then
        bail('BADARG', 'task ' .. t.id .. ': unknown flow ' .. t.flow .. ' (flow_open makes it; or it ended and is no longer kept)')
      end
      fs = {f = t.flow, state = h[1], gated = h[2] == '1', total = tonumber(h[3]) or 0, members = {}}
      flows_seen[t.flow] = fs
      flow_list[#flow_list + 1] = fs
    end
    if fs.state ~= 'open' and not (t.parent and fs.state == 'sealed') then
      bail('BADARG', 'task ' .. t.id .. ': flow ' .. t.flow .. ' is ' .. fs.state ..
        (fs.state == 'sealed' and ': only its running tasks add to it now (spawned_by)' or ''))
    end
    if t.name then
      local key = t.flow .. ' ' .. t.name
      local owner = names_seen[key] or redis.call('HGET', flow_key(t.flow), 'n:' .. t.name)
      if owner and owner ~= t.id then
        bail('BADARG', 'task ' .. t.id .. ': flow ' .. t.flow .. ' already has a task named ' .. t.name .. ' (' .. owner .. ')')
      end
      names_seen[key] = t.id
    end
    if redis.call('HEXISTS', K_TASKS, t.id) == 0 then -- a retried call's tasks are members already
      fs.total = fs.total + 1
      if fs.total > FLOW_MAX_TASKS then
        bail('BADARG', 'flow ' .. t.flow .. ' would have more than ' .. FLOW_MAX_TASKS .. ' tasks: split it')
      end
      t.join = fs
      if fs.gated and fs.state == 'open' then
        local inner = false
        for _, dep in ipairs(t.after or {}) do
          if in_flow[dep] == t.flow or redis.call('HGET', wkey('tflow'), dep) == t.flow then inner = true break end
        end
        if not inner then
          if t.delay > 0 or t.dw then
            bail('BADARG', 'task ' .. t.id .. ': a task of a flow submitted whole takes no delay or debounce: it runs once the flow is sealed')
          end
          local after = {'#' .. t.flow}
          for _, dep in ipairs(t.after or {}) do after[#after + 1] = dep end
          t.after, t.pol, t.uttl = after, t.pol or 'fail', t.uttl or DEFAULT_UNRUN_TTL
        end
      end
      in_flow[t.id] = t.flow
    end
  end
end
if #KEYS ~= idem_i then
  bail('BADARG', 'got ' .. (#KEYS - NKEYS) .. ' extra keys for ' .. (idem_i - NKEYS) ..
    ' idempotency, unique and debounce keys (tasks with idem_ttl_ms, unique_ttl_ms or debounce_ms > 0)')
end

stamp_schema()
local now = now_ms()
local now_s = fmt(now)
local was_empty = redis.call('ZCARD', K_PENDING) == 0
local seq = take_seq(n)
local reply, made, n_made, debounced, grouped, costed = {}, {}, 0, {}, {}, {}
local any_expiry = false
local added_pending = false
local any_deps, doomed = false, {}
local remote_members = {} -- id, "<queue>/<flow>" pairs

-- File new task `id` (with t.after) as waiting for its dependencies: 'waiting', or 'pending'
-- when all of them have finished already, or 'dead'/'cancelled' when one failed under policy
-- fail (the task ends so at once, unrun).
local function wait_for(id, t, now)
  local wx = wkey('wx:' .. id)
  local h, left, failed = {'#pol', t.pol, '#ttl', fmt(t.uttl)}, 0, nil
  for _, dep in ipairs(t.after) do
    local rq, rid = remote_ref(dep)
    local ended = not rq and ((redis.call('ZSCORE', K_DONE, dep) and 'done') or (redis.call('ZSCORE', K_DEAD, dep) and 'dead')
      or (redis.call('ZSCORE', K_CANCELLED, dep) and 'cancelled'))
    if rq then
      -- a task of another queue: wait for it, and ask its queue to tell us when it ends
      if not redis.call('HGET', wx, dep) then
        h[#h + 1] = dep
        h[#h + 1] = 'w'
        left = left + 1
        redis.call('RPUSH', wkey('wo:' .. dep), id)
        outbox_put(rq, 'w', rid, QUEUE_NAME .. '/' .. id)
      end
    elseif ended then
      h[#h + 1] = dep
      h[#h + 1] = ended
      if ended ~= 'done' and t.pol == 'fail' then failed = failed or {dep, ended} end
    elseif not redis.call('HGET', wx, dep) then
      h[#h + 1] = dep
      h[#h + 1] = 'w'
      left = left + 1
      redis.call('RPUSH', wkey('wo:' .. dep), id)
    end
  end
  h[#h + 1] = '#left'
  h[#h + 1] = left
  for s = 1, #h, 2000 do -- unpack takes a few thousand values at most
    redis.call('HSET', wx, unpack(h, s, math.min(s + 1999, #h)))
  end
  if failed then
    deps_lib().end_unrun(id, failed[2], failed[1], t.uttl, now)
    return failed[2]
  end
  if left == 0 then return 'pending' end
  redis.call('ZADD', wkey('waiting'), now, id)
  return 'waiting'
end
-- Task `id` was added by the running task `parent` (spawned_by): every task still waiting for
-- the parent waits for it too, so a join over the parent cannot be released before it ends.
local function spawn_edges(parent, id)
  for _, w in ipairs(redis.call('LRANGE', wkey('wo:' .. parent), 0, -1)) do
    local wx = wkey('wx:' .. w)
    if redis.call('ZSCORE', wkey('waiting'), w) and not redis.call('HGET', wx, id) then
      redis.call('HSET', wx, id, 'w')
      redis.call('HINCRBY', wx, '#left', 1)
      redis.call('RPUSH', wkey('wo:' .. id), w)
    end
  end
end
for i, t in ipairs(tasks) do
  local id, created = t.id, 1
  if t.uniq then
    -- held while its task is pending, delayed, waiting or leased; a holder that finished (or is gone)
    -- left the key free, whatever way it ended. Checked before the idempotency key, which must
    -- not map to a task that was never created.
    local holder = redis.call('GET', t.uniq)
    if holder and holder ~= id and (redis.call('ZSCORE', K_PENDING, holder) or redis.call('ZSCORE', K_LEASED, holder)
        or redis.call('ZSCORE', K_DELAYED, holder) or (DEPS and redis.call('ZSCORE', wkey('waiting'), holder))) then
      id, created = holder, 3
    end
  end
  if created == 1 and t.idem then
    local prev = redis.call('SET', t.idem, id, 'NX', 'PX', t.it, 'GET')
    if prev then
      -- the key's task may have finished and been dropped (its result_ttl shorter than the
      -- key's idem_ttl): say so (2) rather than answer an id nothing can be read of
      id, created = prev, redis.call('HEXISTS', K_TASKS, prev) == 1 and 0 or 2
    end
  end
  if created == 1 and t.deb then
    -- a task still delayed under this key takes the new payload and runs later, never past
    -- max_wait after its creation; a holder already promoted, running or finished starts a new
    -- cycle (a new task takes the key)
    local holder = redis.call('GET', t.deb)
    local old = holder and holder ~= id and redis.call('ZSCORE', K_DELAYED, holder) and redis.call('HGET', K_TASKS, holder)
    local h = old and parse_record(old)
    if h then
      redis.call('HSET', K_TASKS, holder, string.sub(old, 1, h.payload_pos - 1) .. t.payload)
      local at = math.min(now + t.dw, h.created + t.mw)
      wake_delayed_if_first(at)
      redis.call('ZADD', K_DELAYED, fmt(at), holder)
      id, created = holder, 4
      ev_add(debounced, holder, 0)
    end
  end
  if created == 1 then
    local rec = '0|0|0|' .. (t.ex and fmt(now + t.ex) or '0') .. '|' .. t.kind .. t.mid .. now_s .. '|' .. t.payload
    if t.ex then any_expiry = true end
    if redis.call('HSETNX', K_TASKS, id, rec) == 0 then
      created = 0 -- the same id was enqueued before (a retried call): leave it where it is
    elseif t.after then
      any_deps = true
      local state = wait_for(id, t, now)
      if state == 'pending' then
        pend(fmt(pending_score(t.prio, seq + i - 1, now)), id, t.group or DEFAULT_GROUP)
        added_pending = true
      elseif state ~= 'waiting' then
        doomed[#doomed + 1] = {id, state}
        t.doomed = state
      end
    elseif t.delay > 0 or t.dw then
      local at = now + (t.dw or t.delay)
      wake_delayed_if_first(at)
      redis.call('ZADD', K_DELAYED, fmt(at), id)
    else
      pend(fmt(pending_score(t.prio, seq + i - 1, now)), id, t.group or DEFAULT_GROUP)
      added_pending = true
    end
    if created == 1 then
      n_made = n_made + 1
      ev_add(made, id, 0)
      if t.join then
        local m = t.join.members
        m[#m + 1] = t
      elseif t.rflow then
        -- a member of a flow of another queue: its end is told there (include/flows.lua)
        remote_members[#remote_members + 1] = id
        remote_members[#remote_members + 1] = t.flow
      end
      if t.parent and DEPS then spawn_edges(t.parent, id) end
      if t.uniq then redis.call('SET', t.uniq, id, 'PX', t.ut) end
      if t.group and t.group ~= DEFAULT_GROUP then
        grouped[#grouped + 1] = id
        grouped[#grouped + 1] = t.group
      end
      if t.cost then
        costed[#costed + 1] = id
        costed[#costed + 1] = t.cost
      end
      if t.deb then redis.call('SET', t.deb, id, 'PX', t.mw) end
    end
  end
  reply[#reply + 1] = id
  reply[#reply + 1] = created
end
if any_expiry and not EXPIRING then redis.call('HSET', K_META, 'xp', '1') end
if any_deps and not DEPS then redis.call('HSET', K_META, 'wf', '1') end
set_groups(grouped)
if #costed > 0 then
  redis.call('HSET', gkey('tcost'), unpack(costed))
  if not COSTS then redis.call('HSET', K_META, 'tc', '1') end
end
wake_pending(was_empty and added_pending)
if n_made > 0 then
  redis.call('HINCRBY', K_META, 'n_enq', n_made)
  emit('enqueued', '', made, now)
end
emit('debounced', '', debounced, now)
if #remote_members > 0 then
  for s = 1, #remote_members, 2000 do
    redis.call('HSET', wkey('tflow'), unpack(remote_members, s, math.min(s + 1999, #remote_members)))
  end
  if not FLOWS then
    redis.call('HSET', K_META, 'fw', '1')
    FLOWS = true
  end
end
-- new members join their flows (in call order: the members list is the flow's order)
for _, fs in ipairs(flow_list) do
  local m = fs.members
  if #m > 0 then
    local fk, entries, tf, names = flow_key(fs.f), {}, {}, {}
    local ended = {done = 0, dead = 0, cancelled = 0}
    for _, t in ipairs(m) do
      entries[#entries + 1] = t.id .. ' ' .. (t.name or '')
      if t.doomed then -- ended already: counted now, never live in tflow
        ended[t.doomed] = ended[t.doomed] + 1
        if t.doomed == 'dead' then ended.death = ended.death or t.id end
      else
        tf[#tf + 1] = t.id
        tf[#tf + 1] = fs.f
      end
      if t.name then
        names[#names + 1] = 'n:' .. t.name
        names[#names + 1] = t.id
      end
    end
    for s = 1, #entries, 1000 do -- unpack takes a few thousand values at most
      redis.call('RPUSH', flow_members_key(fs.f), unpack(entries, s, math.min(s + 999, #entries)))
    end
    for s = 1, #tf, 2000 do redis.call('HSET', wkey('tflow'), unpack(tf, s, math.min(s + 1999, #tf))) end
    for s = 1, #names, 2000 do redis.call('HSET', fk, unpack(names, s, math.min(s + 1999, #names))) end
    redis.call('HINCRBY', fk, '#total', #m)
    if ended.dead + ended.cancelled > 0 then flow_count(fs.f, ended, now) end
  end
end
-- tasks whose dependency had already failed under policy fail: ended unrun at once (and what
-- waits for them, through spawned_by, in turn; their flows count them)
if #doomed > 0 then
  local items, ids = {dead = {}, cancelled = {}}, {dead = {}, cancelled = {}}
  for _, d in ipairs(doomed) do
    ev_add(items[d[2]], d[1], 0)
    local l = ids[d[2]]
    l[#l + 1] = d[1]
    if d[2] == 'dead' then redis.call('HINCRBY', K_META, 'n_dead', 1) end
  end
  emit('dead', '', items.dead, now)
  emit('cancelled', '', items.cancelled, now)
  task_final(ids.dead, 'dead', now)
  task_final(ids.cancelled, 'cancelled', now)
end
outbox_flush()
return reply
