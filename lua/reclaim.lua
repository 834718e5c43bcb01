#!lua
--[[
name: reclaim
version: 1
purpose: Take back expired leases (a bounded batch): each task goes back to pending, its attempt
  counted, or to the dead-letter set when it has no attempts left. Two kinds of lease were never
  a run and go back to pending uncharged: a push assignment its worker never took, and a stray —
  a lease its worker's start mark (start.lua) does not cover, so the worker died between claim
  and handler start (or never got the claim's reply); a stray still uses up a run number, and past MAX_STRAYS (3) in a
  task's life it is charged like any other expired lease. Also drops workers that stopped
  heartbeating from the registry. Run by the scheduler (and by workers' maintenance loop); any
  number of callers at once is safe.
keys:
  1-18: the queue keyset
touches: meta(rw) tasks(rw) pending(rw) leased(rw) lease(rw) dead(w) cancelled(w) errors(w)
  workers(w) wbeat(rw) assigned(w) winfl(rw) wstat(rw) events(w) groups(rw) wf(rw)
argv:
  1: limit (int, 1..1000) — most leases handled in this call
  2: dead_ttl_ms (int, 1..MAX_MS) — how long a dead task is kept
  3: worker_ttl_ms (int, 1..MAX_MS) — a worker silent for this long is dropped from the registry
reply: {requeued (int), dead (int), next_in_ms (int, ms from now until the earliest remaining lease
  deadline, 0 if already past, -1 if none), workers (array: the worker of each reclaimed lease),
  pruned (array of worker ids dropped from the registry: silent for worker_ttl_ms and holding no
  lease)}
errors:
  BADARG: an argument is out of range; nothing was written
  VERSION: the queue holds another data schema version
  NOPERM: the Redis user lacks Baton's worker ACL rules; nothing was written
bound: O(limit log N) (plus at most 16 gaps checked per lease)
  measured worst (cargo bench --bench worst_case, n = 1000, events on, 2-core VM): about 16-25 ms per call
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

local limit = int_arg(ARGV[1], 'limit', 1, MAX_BATCH)
local dead_ttl = int_arg(ARGV[2], 'dead_ttl_ms', 1, MAX_MS)
local worker_ttl = int_arg(ARGV[3], 'worker_ttl_ms', 1, MAX_MS)
require_worker()
check_schema()

local now = now_ms()
local ids = redis.call('ZRANGEBYSCORE', K_LEASED, '-inf', fmt(now), 'LIMIT', 0, limit)
local requeued, dead, workers = 0, 0, {}
if #ids > 0 then
  local leases = redis.call('HMGET', K_LEASE, unpack(ids))
  local recs = redis.call('HMGET', K_TASKS, unpack(ids))
  local was_empty = redis.call('ZCARD', K_PENDING) == 0
  local seq = take_seq(#ids)
  local final = {}
  local per_owner, owners, owner_of = {}, {}, {}
  for i = 1, #ids do
    local owner = leases[i] and lease_worker(leases[i])
    owner_of[i] = owner
    if owner and not per_owner[owner] then
      per_owner[owner] = 0
      owners[#owners + 1] = owner
    end
  end
  local started = start_marks(owners)
  local ev_reclaimed, ev_dead = {}, {}
  for i, id in ipairs(ids) do
    local owner = owner_of[i]
    workers[#workers + 1] = owner or ''
    local untaken = false
    if owner then
      per_owner[owner] = per_owner[owner] + 1
      -- assigned by push dispatch and never taken: the task never ran on that worker
      untaken = redis.call('ZREM', K_ASSIGNED, owner .. '|' .. id) == 1
    end
    local t = recs[i] and parse_record(recs[i])
    -- taken (or claimed) but its run never started: the worker died before its start mark
    local stray = owner and not untaken and t and t.strays < MAX_STRAYS and
      not started(owner, lease_token(leases[i]))
    if t == nil then
      -- record deleted by hand: nothing left to run
    elseif untaken then
      -- not an attempt: back to pending with the attempts it had
      ev_add(ev_reclaimed, id, t.used + 1)
      pend(fmt(pending_score(t.prio, seq + i - 1, now)), id)
      requeued = requeued + 1
    elseif stray then
      -- not an attempt either, but a run number used up (its lease was handed out as that run)
      local run = t.used + 1
      ev_add(ev_reclaimed, id, run)
      redis.call('HSET', K_TASKS, id, with_stray(recs[i], t))
      redis.call('HSET', K_ERRORS, id, run .. '|' .. fmt(now) .. '|lease expired before run ' .. run ..
        ' started: worker ' .. owner .. ' never marked it started (it stopped between claim and handler start, or never got the claim reply); not counted as an attempt (stray ' ..
        (t.strays + 1) .. ' of ' .. MAX_STRAYS .. ' allowed)')
      pend(fmt(pending_score(t.prio, seq + i - 1, now)), id)
      requeued = requeued + 1
    else
      local run = t.used + 1
      local attempt = run - t.base
      ev_add(ev_reclaimed, id, run)
      redis.call('HSET', K_TASKS, id, with_used(recs[i], run))
      redis.call('HSET', K_ERRORS, id, run .. '|' .. fmt(now) .. '|lease expired: worker ' ..
        tostring(owner) .. ' stopped heartbeating (crashed, killed or stalled) during attempt ' .. attempt .. ' (run ' .. run .. ')')
      if attempt < t.max_attempts then
        pend(fmt(pending_score(t.prio, seq + i - 1, now)), id)
        requeued = requeued + 1
      else
        redis.call('ZADD', K_DEAD, fmt(now + dead_ttl), id)
        final[#final + 1] = id
        dead = dead + 1
        ev_add(ev_dead, id, run)
      end
    end
  end
  redis.call('ZREM', K_LEASED, unpack(ids))
  redis.call('HDEL', K_LEASE, unpack(ids))
  if dead > 0 then redis.call('HINCRBY', K_META, 'n_dead', dead) end
  redis.call('HINCRBY', K_META, 'n_expired', #ids)
  for owner, n in pairs(per_owner) do
    inflight_lost(owner, n)
  end
  signal_free()
  wake_pending(was_empty and requeued > 0)
  task_final(final, 'dead', now)
  emit('reclaimed', '', ev_reclaimed, now)
  emit('dead', '', ev_dead, now)
end
-- Silent workers leave the registry once they hold no lease any more (their leases expire and
-- are reclaimed first), so a pruned worker's in-flight counter is 0 and can never drift.
local silent = redis.call('ZRANGEBYSCORE', K_WBEAT, '-inf', fmt(now - worker_ttl), 'LIMIT', 0, limit)
local pruned = {}
if #silent > 0 then
  local infl = redis.call('HMGET', K_WINFL, unpack(silent))
  for i, w in ipairs(silent) do
    if (tonumber(infl[i]) or 0) <= 0 then pruned[#pruned + 1] = w end
  end
end
if #pruned > 0 then
  redis.call('ZREM', K_WBEAT, unpack(pruned))
  redis.call('HDEL', K_WORKERS, unpack(pruned))
  redis.call('HDEL', K_WINFL, unpack(pruned))
  for _, w in ipairs(pruned) do forget_worker_stats(w) end
end
local nxt = redis.call('ZRANGE', K_LEASED, 0, 0, 'WITHSCORES')
return {requeued, dead, nxt[2] and math.max(0, tonumber(nxt[2]) - now) or -1, workers, pruned}
