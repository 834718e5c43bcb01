#!lua
--[[
name: dispatch
version: 2
purpose: Push dispatch: assign up to n pending tasks, in priority order, to the live workers of
  the registry by a strategy, never beyond a worker's capacity. Each assignment creates the lease
  at once (so a worker that dies with assigned tasks loses none: reclaim covers them) and files
  the task under the worker in `assigned`; each worker that got tasks is woken ("a:<worker>" on
  the wake channel). Any number of dispatchers may run at once.
keys:
  1-18: the queue keyset
touches: meta(rw) tasks(r) pending(rw) leased(rw) lease(w) workers(r) wbeat(r) assigned(w) winfl(rw)
  wstat(w) events(w) groups(rw)
argv:
  1: strategy (string): "random", "round-robin", "weighted" (smooth weighted round-robin by each
     worker's weight) or "least-concurrency" (fewest in flight; ties taken in turn)
  2: n (int, 1..1000) — most tasks assigned in this call
  3: lease_ms (int, 1..86400000) — lease duration of the assignments
  4: alive_ms (int, 1..MAX_MS) — a worker is live if it heartbeat within this long
  5: seed (int, 1..2147483646) — random seed from the caller (strategy "random"; Redis' own
     math.random is deterministic)
reply: {assigned (int), more (1: the work budget cut the call short and tasks are still pending:
  call again at once; 0 otherwise), held (int: 0, or the queue's limits held the call back while
  tasks are pending: ms until the rate admits more, or -1 under the concurrency cap: call again
  when a lease ends, announced on the free channel), then per worker that got tasks: worker id,
  count}
errors:
  BADARG: an argument is out of range; nothing was written
  VERSION: the queue holds another data schema version
  NOPERM: the Redis user lacks Baton's worker ACL rules; nothing was written
bound: O(k log N + k * W + W) with k = min(n, 20000 / W) tasks and W <= 1000 live workers;
  measured worst (cargo bench --bench worst_case, 1000 workers, 2-core VM): about 5-17 ms per call
]]
--@include args
--@include keys
--@include schema
--@include record
--@include notify
--@include registry
--@include fair
--@include lease
--@include events
--@include limits
--@include fairpop

-- Worker visits one call may spend picking (tasks x live workers for the scanning strategies).
local WORK_BUDGET = 20000

local strategy = ARGV[1]
if strategy ~= 'random' and strategy ~= 'round-robin' and strategy ~= 'weighted' and strategy ~= 'least-concurrency' then
  bail('BADARG', 'strategy must be random, round-robin, weighted or least-concurrency, got ' .. tostring(strategy))
end
local n = int_arg(ARGV[2], 'n', 1, MAX_BATCH)
local lease_ms = int_arg(ARGV[3], 'lease_ms', 1, 86400000)
local alive_ms = int_arg(ARGV[4], 'alive_ms', 1, MAX_MS)
local seed = int_arg(ARGV[5], 'seed', 1, 2147483646)
require_worker()
local meta = check_schema('paused', 'rr', 'lc')
-- paused, or the queue is in pull mode (configure): workers claim for themselves
if meta[2] == '1' or DM == 'pull' then return {0, 0, 0} end

local now = now_ms()
local ids = redis.call('ZRANGEBYSCORE', K_WBEAT, fmt(now - alive_ms), '+inf', 'LIMIT', 0, MAX_BATCH)
if #ids == 0 then return {0, 0, 0} end
table.sort(ids) -- one stable order for every dispatcher
local infos = redis.call('HMGET', K_WORKERS, unpack(ids))
local infl = redis.call('HMGET', K_WINFL, unpack(ids))
local swf = {}
for i, w in ipairs(ids) do swf[i] = 'sw:' .. w end
local sws = redis.call('HMGET', K_META, unpack(swf))
local workers, total_free = {}, 0
for i, w in ipairs(ids) do
  local ok, info = pcall(cjson.decode, infos[i] or '{}')
  if not ok or type(info) ~= 'table' then info = {} end
  -- capped at MAX_BATCH: a heartbeat renews at most that many untaken assignments
  local cap = math.min(tonumber(info.capacity) or tonumber(info.concurrency) or 1, MAX_BATCH)
  -- a worker running in pull mode never takes assignments: give it none
  if info.dispatch == 'pull' then cap = 0 end
  local weight = tonumber(info.weight) or 1
  local inflight = tonumber(infl[i]) or 0
  local free = math.max(0, cap - inflight)
  total_free = total_free + free
  workers[i] = {id = w, free = free, weight = weight, inflight = inflight, sw = tonumber(sws[i]) or 0, got = 0, items = {}}
end
-- Bounded work: picking looks at the live workers for each task, so with many of them one call
-- assigns fewer tasks (at least one) and says there is more to do.
local wanted = math.min(n, total_free)
local k = math.min(wanted, math.max(1, math.floor(WORK_BUDGET / #ids)))
if k == 0 then return {0, 0, 0} end
-- the queue's limits (include/limits.lua) may cut k further
local limit, wait
if FLOW then k, limit, wait = limits_lib().room(k, now) end
local popped = {}
if k > 0 then popped = pop_pending(k, now, lease_ms, '') end
-- held: the wait the limits or the parked groups of a fair queue give (0: not held)
local function held(given)
  return (FLOW and limits_lib().after(given, limit, wait, now, '')) or FAIR_WAIT or 0
end
if #popped == 0 then return {0, 0, held(0)} end
local tids = {}
for i = 1, #popped, 2 do tids[#tids + 1] = popped[i] end
local recs = redis.call('HMGET', K_TASKS, unpack(tids))

-- Park-Miller minimal standard generator: exact in doubles, seeded by the caller.
local state = seed
local function rand()
  state = (state * 48271) % 2147483647
  return state / 2147483647
end

local W = #workers
local function index_of(id)
  if not id then return 0 end
  for i, w in ipairs(workers) do
    if w.id > id then return i - 1 end
    if w.id == id then return i end
  end
  return W
end
local rr = index_of(meta[3] or nil) -- position of the last worker served
local lc = index_of(meta[4] or nil)

local function pick()
  if strategy == 'random' then
    local cands = {}
    for _, w in ipairs(workers) do if w.free > 0 then cands[#cands + 1] = w end end
    return cands[math.floor(rand() * #cands) + 1]
  elseif strategy == 'round-robin' then
    for step = 1, W do
      local i = (rr + step - 1) % W + 1
      if workers[i].free > 0 then rr = i return workers[i] end
    end
  elseif strategy == 'weighted' then
    local total, best = 0, nil
    for _, w in ipairs(workers) do
      if w.free > 0 then
        w.sw = w.sw + w.weight
        total = total + w.weight
        if best == nil or w.sw > best.sw then best = w end
      end
    end
    best.sw = best.sw - total
    return best
  else -- least-concurrency: fewest in flight; among equals, the next one after the last pick
    local best, bi = nil, 0
    for step = 1, W do
      local i = (lc + step - 1) % W + 1
      local w = workers[i]
      if w.free > 0 and (best == nil or w.inflight < best.inflight) then best, bi = w, i end
    end
    lc = bi
    return best
  end
end

local fence = take_fence(#tids)
local deadline = fmt(now + lease_ms)
local zargs, hargs, aargs = {}, {}, {}
local assigned = 0
for i, id in ipairs(tids) do
  if recs[i] then -- a record deleted by hand is dropped from pending, never handed out
    local w = pick()
    w.free = w.free - 1
    w.inflight = w.inflight + 1
    w.got = w.got + 1
    if events_on() then ev_add(w.items, id, (rec_used(recs[i]) + 1)) end
    assigned = assigned + 1
    zargs[#zargs + 1] = deadline
    zargs[#zargs + 1] = id
    hargs[#hargs + 1] = id
    hargs[#hargs + 1] = fmt(fence + i) .. '|' .. w.id
    aargs[#aargs + 1] = 0
    aargs[#aargs + 1] = w.id .. '|' .. id
  end
end
-- more: the budget cut this call short and tasks are still pending
local more = (limit == nil and k < wanted and redis.call('ZCARD', K_PENDING) > 0) and 1 or 0
local reply = {assigned, more, held(assigned)}
if assigned > 0 then
  put_leases(zargs, hargs)
  redis.call('ZADD', K_ASSIGNED, unpack(aargs))
  for _, w in ipairs(workers) do
    if w.got > 0 then
      leases_given(w.id, w.got)
      redis.call('PUBLISH', CHAN_WAKE, 'a:' .. w.id)
      reply[#reply + 1] = w.id
      reply[#reply + 1] = w.got
      emit('dispatched', w.id, w.items, now)
    end
  end
end
local m = {}
if strategy == 'round-robin' and rr > 0 then m = {'rr', workers[rr].id} end
if strategy == 'least-concurrency' and lc > 0 then m = {'lc', workers[lc].id} end
if strategy == 'weighted' then
  for _, w in ipairs(workers) do
    m[#m + 1] = 'sw:' .. w.id
    m[#m + 1] = w.sw
  end
end
if #m > 0 then redis.call('HSET', K_META, unpack(m)) end
return reply
