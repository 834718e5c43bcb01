#!lua
--[[
name: flow_open
version: 1
purpose: Open a flow or a batch on a queue: a set of tasks kept together (include/flows.lua).
  Tasks join it through enqueue (option flow, and name for a node of a flow); it is open until
  flow_seal. Its callbacks are tasks of this queue enqueued exactly once, with the id
  "<flow>.<event>": on_success when every member is done, on_complete when every member has
  finished (done, dead or cancelled), on_death at the first member that ended dead. A callback
  can only fire once the flow is sealed (on_death: at any time), so members added before the
  seal — by the submitter, or by running members (spawned_by) — are always counted first.
keys:
  1-18: the queue keyset
touches: meta(rw) wf(rw)
argv:
  1: flow (string, 1-100 of [A-Za-z0-9-_:.]) — the flow's id (made by the caller, so a retried
    call is idempotent)
  2: gated (int, 0..1) — 1: a flow submitted whole: its tasks with no dependency among the
    flow's tasks wait until it is sealed (all or none run); 0: a batch: tasks run as they join
  3: size (int, 0..FLOW_MAX_TASKS) — how many tasks the caller will add (0 = not known); a
    flow never has more than FLOW_MAX_TASKS members
  4: ttl_ms (int, 1..MAX_MS) — how long the flow's bookkeeping is kept once it has ended
  then 0..3 callbacks of 12 fields:
    event (string, "on_success", "on_complete" or "on_death"; each at most once)
    kind (string, 1-128 of [A-Za-z0-9-_:.])
    payload (bytes)
    priority (int, -1000..1000)
    max_attempts (int, 1..1000000)
    backoff (string, "f" fixed or "e" exponential)
    backoff_base_ms (int, 0..MAX_MS)
    backoff_cap_ms (int, backoff_base_ms..MAX_MS)
    jitter_pct (int, 0..100)
    timeout_ms (int, 0..MAX_MS)
    result_ttl_ms (int, 0..MAX_MS)
    group (string, "" = "default", else 1-128 of [A-Za-z0-9-_:.])
reply: 1 when opened, 0 when a flow with this id exists already (nothing changed)
errors:
  BADARG: an argument is missing or out of range; nothing was written
  VERSION: the queue holds another data schema version
bound: O(1)
]]
--@include args
--@include keys
--@include schema
--@include notify
--@include record
--@include fair
--@include events
--@include outbox
--@include flows

local f = id_arg(ARGV[1], 'flow')
if #f > 100 then
  bail('BADARG', 'flow must be at most 100 characters (its callbacks are "<flow>.<event>"), got ' .. #f)
end
local gated = int_arg(ARGV[2], 'gated', 0, 1)
local size = int_arg(ARGV[3], 'size', 0, FLOW_MAX_TASKS)
local ttl = int_arg(ARGV[4], 'ttl_ms', 1, MAX_MS)
local CB = 12
local ncb = (#ARGV - 4) / CB
if ncb ~= math.floor(ncb) or ncb > #FLOW_EVENTS then
  bail('BADARG', 'expected 4 arguments, then 0..' .. #FLOW_EVENTS .. ' callbacks of ' .. CB .. ' fields, got ' .. #ARGV)
end
local h = {'#state', 'open', '#gated', gated, '#total', 0, '#ttl', ttl, '#size', size}
local seen = {}
for i = 0, ncb - 1 do
  local b = 4 + i * CB
  local ev = ARGV[b + 1]
  if ev ~= 'on_success' and ev ~= 'on_complete' and ev ~= 'on_death' then
    bail('BADARG', 'callback event must be on_success, on_complete or on_death, got ' .. tostring(ev))
  end
  if seen[ev] then bail('BADARG', 'callback ' .. ev .. ' given twice') end
  seen[ev] = true
  local kind = id_arg(ARGV[b + 2], 'kind')
  local payload = ARGV[b + 3]
  local prio = int_arg(ARGV[b + 4], 'priority', -PRIO_MAX, PRIO_MAX)
  local ma = int_arg(ARGV[b + 5], 'max_attempts', 1, 1000000)
  local bo = ARGV[b + 6]
  if bo ~= 'f' and bo ~= 'e' then
    bail('BADARG', 'backoff must be "f" (fixed) or "e" (exponential), got ' .. tostring(bo))
  end
  local base = int_arg(ARGV[b + 7], 'backoff_base_ms', 0, MAX_MS)
  local cap = int_arg(ARGV[b + 8], 'backoff_cap_ms', base, MAX_MS)
  local jit = int_arg(ARGV[b + 9], 'jitter_pct', 0, 100)
  local to = int_arg(ARGV[b + 10], 'timeout_ms', 0, MAX_MS)
  local rt = int_arg(ARGV[b + 11], 'result_ttl_ms', 0, MAX_MS)
  local g = ARGV[b + 12]
  if g ~= '' then g = id_arg(g, 'group') end
  -- the record between expiry and created_ms (include/record.lua): kind|priority|...|result_ttl|
  h[#h + 1] = 'cb:' .. ev
  h[#h + 1] = kind .. '|' .. prio .. '|' .. ma .. '|' .. bo .. '|' .. fmt(base) .. '|' .. fmt(cap) .. '|' ..
    jit .. '|' .. fmt(to) .. '|' .. fmt(rt) .. '|'
  h[#h + 1] = 'cp:' .. ev
  h[#h + 1] = payload
  if g ~= '' and g ~= DEFAULT_GROUP then
    h[#h + 1] = 'cg:' .. ev
    h[#h + 1] = g
  end
end

stamp_schema()
local fk = flow_key(f)
if redis.call('HEXISTS', fk, '#state') == 1 then return 0 end
h[#h + 1] = '#created'
h[#h + 1] = fmt(now_ms())
redis.call('HSET', fk, unpack(h))
if not FLOWS then redis.call('HSET', K_META, 'fw', '1') end
return 1
