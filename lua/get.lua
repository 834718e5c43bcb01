#!lua flags=no-writes
--[[
name: get
version: 2
purpose: Inspect one task: its state and everything kept about it. Read-only (runs on replicas).
keys:
  1-18: the queue keyset
touches: meta(r) tasks(r) pending(r) delayed(r) leased(r) lease(r) done(r) dead(r) cancelled(r)
  results(r) errors(r) progress(r) wf(r)
argv:
  1: id (string)
reply: {} when the task is unknown or its retention has passed; otherwise
  {state ("pending", "delayed", "waiting", "leased", "done", "dead", "cancelled"), record (string, see claim),
   attempts (int, attempts started so far, since the last requeue), lease ("token|worker" or ""),
   state_score (string: pending score, run-at ms, lease deadline ms, expiry ms, or for a
     waiting task its creation ms),
   error ("run|at_ms|message" of the last failure, or ""),
   result (result bytes when done, or ""),
   progress ("token|percent|at_ms|event_ms|message" of the last progress report, or ""; the token
     tells which run sent it: the current lease's token, or an earlier run's)}
errors:
  BADARG: no task id
  VERSION: the queue holds another data schema version
bound: O(log N)
]]
--@include args
--@include keys
--@include schema
--@include notify

local id = ARGV[1]
if id == nil then bail('BADARG', 'expected a task id') end
check_schema()
local rec = redis.call('HGET', K_TASKS, id)
if not rec then return {} end
local state, score = nil, nil
for _, s in ipairs({{'pending', K_PENDING}, {'delayed', K_DELAYED}, {'leased', K_LEASED},
    {'done', K_DONE}, {'dead', K_DEAD}, {'cancelled', K_CANCELLED}}) do
  score = redis.call('ZSCORE', s[2], id)
  if score then state = s[1] break end
end
if state == nil and DEPS then
  score = redis.call('ZSCORE', wkey('waiting'), id)
  if score then state = 'waiting' end
end
if state == nil then return {} end
if (state == 'done' or state == 'dead' or state == 'cancelled') and tonumber(score) <= now_ms() then
  return {} -- past its retention; the janitor drops it soon
end
-- attempts that ended are counted in the record; a running or completed one is not
local used, base = string.match(rec, '^(%d+)|(%d+)|')
local attempts = (tonumber(used) or 0) - (tonumber(base) or 0)
if state == 'leased' or state == 'done' then attempts = attempts + 1 end
local lease = redis.call('HGET', K_LEASE, id) or ''
local result = ''
if state == 'done' then result = redis.call('HGET', K_RESULTS, id) or '' end
return {state, rec, attempts, lease, score, redis.call('HGET', K_ERRORS, id) or '', result,
  redis.call('HGET', K_PROGRESS, id) or ''}
