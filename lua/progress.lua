#!lua
--[[
name: progress
version: 1
purpose: A running handler reports how far it got: a percentage and an optional short message,
  kept with the task (get shows it, with the fencing token of the run that sent it) until the
  task is dropped. Token-checked like an acknowledgement: a report from a run that no longer
  holds the lease (reclaimed, cancelled, already acknowledged, another worker's) is refused and
  changes nothing. Emits a `progress` event carrying "percent|message", at most one per task per
  PROGRESS_EVENT_MS (500 ms; the manifest's events.progress_min_interval_ms): a report inside
  that window is stored but not announced, so a chatty handler cannot flood the event stream.
keys:
  1-18: the queue keyset
touches: meta(r) tasks(r) lease(r) cancelled(r) events(w) progress(rw)
argv:
  1: worker (string, 1-128 of [A-Za-z0-9-_:.]) — the worker's id
  2: id (string, 1-128 of [A-Za-z0-9-_:.]) — the task
  3: token (string) — the lease's fencing token, as claim or take handed it out
  4: percent (int, 0..100) — how far the run got
  5: message (bytes, 0..MAX_PROGRESS_MESSAGE) — a short note shown beside the percentage ("" for none)
reply: 1 = stored; 0 = stale (this worker and token do not hold the task's lease: the report is
  refused, nothing changed — stop the handler, its result will be refused too); 2 = cancelled
  (stop the handler)
errors:
  BADARG: an argument is missing or out of range; nothing was written
  VERSION: the queue holds another data schema version
  NOPERM: the Redis user lacks Baton's worker ACL rules; nothing was written
bound: O(1) (reads the task's record only when an event is due)
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

-- At most one `progress` event per task per this many ms (manifest: events.progress_min_interval_ms).
local PROGRESS_EVENT_MS = 500
-- Longest progress message, bytes (manifest: the `message` argument's max).
local MAX_PROGRESS_MESSAGE = 200

if #ARGV ~= 5 then bail('BADARG', 'expected worker, id, token, percent and message, got ' .. #ARGV .. ' values') end
local worker = id_arg(ARGV[1], 'worker')
local id = id_arg(ARGV[2], 'id')
local token = ARGV[3]
if not string.find(token, '^%d+$') then bail('BADARG', 'token must be a fencing token (digits), got ' .. token) end
local pct = int_arg(ARGV[4], 'percent', 0, 100)
local msg = ARGV[5]
if #msg > MAX_PROGRESS_MESSAGE then
  bail('BADARG', 'message must be at most ' .. MAX_PROGRESS_MESSAGE .. ' bytes, got ' .. #msg)
end
require_worker()
check_schema()

if not held_leases(worker, {id}, 2, 1, false)[1] then -- the token is ARGV[3]
  if redis.call('ZSCORE', K_CANCELLED, id) then return 2 end
  return 0
end
local now = now_ms()
-- the last event of this run: "token|percent|at_ms|event_ms|message"
local last_ev = 0
local prev = redis.call('HGET', K_PROGRESS, id)
if prev then
  local ptok, pev = string.match(prev, '^(%d+)|%d+|%d+|(%d+)|')
  if ptok == token then last_ev = tonumber(pev) end
end
if events_on() and now - last_ev >= PROGRESS_EVENT_MS then
  local rec = redis.call('HGET', K_TASKS, id)
  local items = {}
  ev_add(items, id, rec and rec_used(rec) + 1 or 0)
  emit('progress', worker, items, now, pct .. '|' .. msg)
  last_ev = now
end
redis.call('HSET', K_PROGRESS, id, token .. '|' .. pct .. '|' .. fmt(now) .. '|' .. fmt(last_ev) .. '|' .. msg)
return 1
