#!lua
--[[
name: flow_seal
version: 1
purpose: Seal or cancel a flow (include/flows.lua). Sealing closes it to new members (only its
  running tasks add to it from then on, through spawned_by), releases the tasks of a flow
  submitted whole that were waiting for the seal, and lets its callbacks fire: if every member
  has already finished, the flow ends in this call. Cancelling closes it too; the tasks of a
  flow submitted whole that were waiting for the seal are cancelled, and every task waiting for
  them in turn whatever its failure policy; no callback fires after a cancel. Tasks of the flow
  already pending, delayed or running are not touched here (the caller cancels them with
  cancel, which cascades).
keys:
  1-18: the queue keyset
touches: meta(rw) tasks(rw) pending(rw) dead(w) cancelled(w) errors(w) events(w) groups(rw) wf(rw)
argv:
  1: flow (string, 1-128 of [A-Za-z0-9-_:.]) — the flow's id
  2: mode (string, "seal" or "cancel")
reply: {state before the call ("open", "sealed", "complete" or "cancelled"), state after}; a
  call that finds the flow already sealed, complete or cancelled changes nothing (a retry)
errors:
  BADARG: an argument is out of range, or the flow is unknown (never opened, or ended and no
    longer kept); nothing was written
  VERSION: the queue holds another data schema version
bound: O(r log N) for the r tasks waiting for the seal, and the tasks a cancel ends through
  them; a flow's end also enqueues its callbacks
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

local f = id_arg(ARGV[1], 'flow')
local mode = ARGV[2]
if mode ~= 'seal' and mode ~= 'cancel' then
  bail('BADARG', 'mode must be seal or cancel, got ' .. tostring(mode))
end
check_schema()
local fk = flow_key(f)
local h = redis.call('HMGET', fk, '#state', '#gated')
local was = h[1]
if not was then
  bail('BADARG', 'unknown flow ' .. f .. ' (never opened, or it ended and is no longer kept)')
end
if was ~= 'open' and not (mode == 'cancel' and was == 'sealed') then return {was, was} end
local now = now_ms()
local to = mode == 'seal' and 'sealed' or 'cancelled'
redis.call('HSET', fk, '#state', to, '#sealed', fmt(now))
if h[2] == '1' and was == 'open' then
  -- the flow's gate: what waits for the seal is released, or (cancel) ends, forced
  task_final({'#' .. f}, mode == 'seal' and 'done' or 'cancelled', now, mode == 'cancel' or nil)
end
flow_check_end(f, now)
return {was, redis.call('HGET', fk, '#state') or to}
