#!lua flags=no-writes
--[[
name: flow_status
version: 1
purpose: A flow's state and counts, and a page of its members (in the order they joined) with
  each one's name and state. Read-only (runs on replicas).
keys:
  1-18: the queue keyset
touches: meta(r) pending(r) delayed(r) leased(r) done(r) dead(r) cancelled(r) wf(r)
argv:
  1: flow (string, 1-128 of [A-Za-z0-9-_:.]) — the flow's id
  2: start (int, 0..FLOW_MAX_TASKS) — the first member of the page (0 = the first to join)
  3: count (int, 0..1000) — members in the page (0 = the summary only)
reply: empty when the flow is unknown (never opened, or ended and no longer kept); else a flat
  array: state ("open", "sealed", "complete" or "cancelled"), gated (0/1), total members, done,
  dead, cancelled, created ms, ended ms (0 while it has not ended), the first member that died
  (""), the ids of the callbacks enqueued for on_success, on_complete and on_death ("" when not),
  then 3 per member of the page: id, name ("" when none), state ("waiting", "pending",
  "delayed", "leased", "done", "dead", "cancelled", or "" when no longer kept)
errors:
  BADARG: an argument is out of range
  VERSION: the queue holds another data schema version
bound: O(count log N)
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
local start = int_arg(ARGV[2], 'start', 0, FLOW_MAX_TASKS)
local count = int_arg(ARGV[3], 'count', 0, MAX_BATCH)
check_schema()
local h = redis.call('HMGET', flow_key(f), '#state', '#gated', '#total', '#done', '#dead', '#cancelled',
  '#created', '#ended', '#death', 'fired:on_success', 'fired:on_complete', 'fired:on_death')
if not h[1] then return {} end
local reply = {h[1], tonumber(h[2]) or 0, tonumber(h[3]) or 0, tonumber(h[4]) or 0, tonumber(h[5]) or 0,
  tonumber(h[6]) or 0, h[7] or '0', h[8] or '0', h[9] or '', h[10] or '', h[11] or '', h[12] or ''}
if count == 0 then return reply end
-- the state set holding a member (none: no longer kept)
local function state_of(id)
  if redis.call('ZSCORE', K_LEASED, id) then return 'leased' end
  if redis.call('ZSCORE', K_PENDING, id) then return 'pending' end
  if redis.call('ZSCORE', wkey('waiting'), id) then return 'waiting' end
  if redis.call('ZSCORE', K_DELAYED, id) then return 'delayed' end
  if redis.call('ZSCORE', K_DONE, id) then return 'done' end
  if redis.call('ZSCORE', K_DEAD, id) then return 'dead' end
  if redis.call('ZSCORE', K_CANCELLED, id) then return 'cancelled' end
  return ''
end
for _, e in ipairs(redis.call('LRANGE', flow_members_key(f), start, start + count - 1)) do
  local id, name = string.match(e, '^(%S+) (.*)$')
  local state = state_of(id)
  reply[#reply + 1] = id
  reply[#reply + 1] = name
  reply[#reply + 1] = state
end
return reply
