#!lua
--[[
name: complete
version: 1
purpose: Acknowledge finished tasks (a batch): token-checked; keeps each task and its result for
  its result TTL in `done`, and wakes result waiters.
keys:
  1-18: the queue keyset
touches: meta(rw) tasks(rw) pending(rw) leased(w) lease(rw) done(w) dead(w) cancelled(w) results(w)
  errors(w) winfl(w) wstat(w) events(w) progress(w) groups(rw) wf(rw)
argv:
  1: worker (string) — the worker's id
  2: busy_ms (int, 0..MAX_MS) — run time of these tasks' handlers, summed (worker statistics)
  then groups of 4: id, token, result_ttl_ms (int, 0..MAX_MS; >= 0, the record's result_ttl_ms; 0 = forget
    the task now), result (bytes; an empty result is not stored) — 1..1000 groups
reply: flat array, one status per group, in order: 1 = completed, 0 = stale (the lease is not
  held by this worker and token any more: reclaimed, cancelled or already acknowledged; nothing
  changed for that task)
errors:
  BADARG: an argument is out of range or the groups are incomplete; nothing was written
  VERSION: the queue holds another data schema version
  NOPERM: the Redis user lacks Baton's worker ACL rules; nothing was written
bound: O(n log N) for n <= 1000 groups
  measured worst (cargo bench --bench worst_case, n = 1000, events on, 2-core VM): about 7-12 ms per call
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
--@include outbox
--@include flows
--@include deps
--@include drop

local worker = id_arg(ARGV[1], 'worker')
local busy = int_arg(ARGV[2], 'busy_ms', 0, MAX_MS)
local ng = groups_arg(2, 4, 1, MAX_BATCH, 'id/token/result_ttl_ms/result groups after worker and busy_ms')
local ids, ttls = {}, {}
for i = 1, ng do
  ids[i] = ARGV[4 * i - 1]
  ttls[i] = int_arg(ARGV[4 * i + 1], 'result_ttl_ms', 0, MAX_MS)
end
require_worker()
check_schema()

local held = held_leases(worker, ids, 0, 4, true)
local now = now_ms()
local ok_ids, done_z, res_h, drop, reply = {}, {}, {}, {}, {}
for i, id in ipairs(ids) do
  if held[i] then
    reply[i] = 1
    ok_ids[#ok_ids + 1] = id
    if ttls[i] > 0 then
      done_z[#done_z + 1] = fmt(now + ttls[i])
      done_z[#done_z + 1] = id
      local result = ARGV[4 * i + 2]
      if #result > 0 then
        res_h[#res_h + 1] = id
        res_h[#res_h + 1] = result
      end
    else
      drop[#drop + 1] = id
    end
  else
    reply[i] = 0
  end
end
if #ok_ids > 0 then
  local items = {}
  if events_on() then -- read before result_ttl 0 drops the records
    local recs = redis.call('HMGET', K_TASKS, unpack(ok_ids))
    for i, id in ipairs(ok_ids) do ev_add(items, id, (recs[i] and rec_used(recs[i]) + 1 or 0)) end
  end
  end_leases(worker, ok_ids)
  if #done_z > 0 then redis.call('ZADD', K_DONE, unpack(done_z)) end
  if #res_h > 0 then redis.call('HSET', K_RESULTS, unpack(res_h)) end
  if #drop > 0 then
    -- result_ttl 0: the task is forgotten at once, with everything kept about it
    drop_tasks(drop)
  end
  redis.call('HINCRBY', K_META, 'n_done', #ok_ids)
  stat_add(worker, 'c', #ok_ids)
  stat_add(worker, 'b', busy)
  task_final(ok_ids, 'done', now)
  emit('completed', worker, items, now)
end
return reply
