#!lua
--[[
name: deliver
version: 1
purpose: Apply messages that other queues' outboxes hold for this queue (include/outbox.lua):
  dependencies across queues. A watch ("w": task <b> of another queue waits for task <a> of
  this one) files the watcher with <a>'s dependents, or, when <a> has already ended or this
  queue does not know it, answers at once through this queue's outbox (an unknown task counts
  as dead). A settle ("s": task <a> = "<queue>/<id>" of another queue ended <b>) settles every
  task of this queue waiting for it, as the end of a task of this queue would (release, or end
  it unrun under on_failure fail, and so on down the chain). Each message may arrive more than
  once: a second watch only repeats the answer, a second settle finds nothing left waiting.
  A watch of "#<flow>" waits for the seal of a flow of this queue (its members on other queues
  wait for it), answered done once sealed, cancelled once cancelled. A member end ("f": task b
  = "<queue>/<id>|<outcome>" of another queue, a member of flow a of this queue, ended) counts
  it in its flow, once, and may end the flow and fire its callbacks.
keys:
  1-18: the queue keyset
touches: meta(rw) tasks(rw) pending(rw) done(r) dead(rw) cancelled(rw) errors(w) events(w)
  groups(rw) wf(rw)
argv:
  then 1..1000 messages of 3 fields:
    kind (string, "w" watch, "s" settle or "f" member end)
    a (string) — watch: the id of the task of this queue that is waited for, or "#<flow>";
      settle: "<queue>/<id>", the task of another queue that ended; member end: the flow
    b (string) — watch: "<queue>/<id>", the waiting task of another queue; settle: how it
      ended, "done", "dead" or "cancelled"; member end: "<queue>/<id>|<outcome>"
reply: {watches applied, settles applied, member ends applied}
errors:
  BADARG: an argument is missing or out of range; nothing was written
  VERSION: the queue holds another data schema version
  NOPERM: the Redis user may not run worker-side transitions (producer rules)
bound: O(m log N) for m messages, and the tasks a settle releases or ends through them
]]
--@include args
--@include keys
--@include schema
--@include record
--@include notify
--@include fair
--@include events
--@include outbox
--@include flows
--@include deps

local M = 3
local m = #ARGV / M
if m ~= math.floor(m) or m < 1 or m > MAX_BATCH then
  bail('BADARG', 'expected 1..' .. MAX_BATCH .. ' messages of ' .. M .. ' fields, got ' .. #ARGV .. ' arguments')
end
local function ref_arg(v, name)
  local q, id = remote_ref(v or '')
  if not q then bail('BADARG', name .. ' must be "<queue>/<id>", got ' .. tostring(v)) end
  id_arg(q, name .. ' (queue)')
  ref_id_arg(id, name .. ' (id)')
  return q
end
local function outcome_arg(v)
  if v ~= 'done' and v ~= 'dead' and v ~= 'cancelled' then
    bail('BADARG', 'an end is done, dead or cancelled, got ' .. tostring(v))
  end
  return v
end
local watches, settles, ends = {}, {}, {}
for i = 0, m - 1 do
  local kind, a, b = ARGV[i * M + 1], ARGV[i * M + 2], ARGV[i * M + 3]
  if kind == 'w' then
    ref_id_arg(a, 'watched id')
    watches[#watches + 1] = {a, b, ref_arg(b, 'watcher'), string.sub(a, 1, 1) == '#'}
  elseif kind == 's' then
    ref_arg(a, 'settled task')
    local _, sid = remote_ref(a)
    outcome_arg(b)
    -- the seal of a flow of another queue that was cancelled ends its members whatever their
    -- policy, as it does on the flow's own queue
    settles[#settles + 1] = {a, b, string.sub(sid, 1, 1) == '#' and b ~= 'done' or nil}
  elseif kind == 'f' then
    id_arg(a, 'flow')
    local who, how = string.match(b or '', '^(.*)|(.*)$')
    ref_arg(who, 'member')
    ends[#ends + 1] = {a, who, outcome_arg(how)} -- the flow a is the member's `tflow` entry here
  else
    bail('BADARG', 'message kind must be "w" (watch), "s" (settle) or "f" (member end), got ' .. tostring(kind))
  end
end

check_schema()
require_worker()
local now = now_ms()
for _, w in ipairs(watches) do
  local id, watcher, wq, gate = w[1], w[2], w[3], w[4]
  local ended
  if gate then
    -- the seal of flow <id>: open waits; sealed or ended is done; cancelled; unknown counts dead
    local fk = flow_key(string.sub(id, 2))
    local st = redis.call('HGET', fk, '#state')
    ended = (not st and 'dead') or (st == 'cancelled' and 'cancelled') or (st ~= 'open' and 'done') or nil
  else
    ended = (redis.call('HEXISTS', K_TASKS, id) == 0 and 'dead') or (redis.call('ZSCORE', K_DONE, id) and 'done')
      or (redis.call('ZSCORE', K_DEAD, id) and 'dead') or (redis.call('ZSCORE', K_CANCELLED, id) and 'cancelled')
  end
  if ended then
    outbox_put(wq, 's', QUEUE_NAME .. '/' .. id, ended)
  else
    redis.call('RPUSH', wkey('wo:' .. id), watcher)
    if not DEPS then
      redis.call('HSET', K_META, 'wf', '1')
      DEPS = true
    end
  end
end
if #settles > 0 and DEPS then deps_settle(settles, now) end
-- members of this queue's flows that ended on their own queues: counted once (flows_final
-- finds them in `tflow` only the first time)
local member_ends = {}
for i, e in ipairs(ends) do member_ends[i] = {e[2], e[3]} end
flows_final(member_ends, now)
outbox_flush()
return {#watches, #settles, #ends}
