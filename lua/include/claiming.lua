-- include/claiming.lua — hand out up to n pending tasks under leases (claim; take on a queue in
-- pull mode). Hot path: a constant number of Redis commands per batch, no record parsing.
--@include args
--@include keys
--@include schema
--@include record
--@include notify
--@include registry
--@include lease
--@include fair
--@include events
--@include deps
--@include limits
--@include fairpop

-- Tasks whose expires_ms passed before a run could start (`expired`: their ids and records):
-- to the dead-letter set for dead_ttl ms with the reason as their last error, counted (meta
-- n_dead and n_lapsed) and announced as one `dead` event. They hold no lease.
local function lapse_tasks(expired, now, dead_ttl)
  if #expired == 0 then return end
  local zargs, eargs, ids, items = {}, {}, {}, {}
  for i, e in ipairs(expired) do
    local used = rec_used(e[2])
    ids[i] = e[1]
    zargs[#zargs + 1] = fmt(now + dead_ttl)
    zargs[#zargs + 1] = e[1]
    eargs[#eargs + 1] = e[1]
    eargs[#eargs + 1] = used .. '|' .. fmt(now) .. '|expired: no run may start after ' .. fmt(rec_expires(e[2])) ..
      ' (its expires_at, Redis ms); never handed out again'
    if events_on() then ev_add(items, e[1], used) end
  end
  redis.call('ZADD', K_DEAD, unpack(zargs))
  redis.call('HSET', K_ERRORS, unpack(eargs))
  redis.call('HINCRBY', K_META, 'n_dead', #ids)
  redis.call('HINCRBY', K_META, 'n_lapsed', #ids)
  task_final(ids, 'dead', now)
  emit('dead', '', items, now)
end

-- The record has expired at `now` (only looked for on a queue that ever had expiring tasks).
local function expired_at(rec, now)
  if not EXPIRING then return false end
  local ex = rec_expires(rec)
  return ex > 0 and ex <= now
end

-- Pop up to n pending tasks (highest priority first) and lease them to `worker`; the reply rows
-- are id, token, deadline_ms, record. Expired tasks are lapsed instead (dead for dead_ttl ms).
-- On a queue with limits (include/limits.lua) they cut n first; when they held the call back
-- the reply ends with one more value, the wait (ms until the rate admits more, -1: wait for a
-- lease to end under the concurrency cap).
local function claim_pending(worker, n, lease_ms, dead_ttl)
  -- Redis time is read before the pop only when limits or groups need it (an empty claim on a
  -- plain queue needs none)
  local now = (FLOW or FAIR) and now_ms() or nil
  local limit, wait
  if FLOW then n, limit, wait = limits_lib().room(n, now) end
  local popped = {}
  if n > 0 then popped = pop_pending(n, now, lease_ms, worker) end
  if #popped == 0 then
    if FLOW then wait = limits_lib().after(0, limit, wait, now, worker) end
    wait = wait or FAIR_WAIT
    if wait then return {wait} end
    return {}
  end
  now = now or now_ms()
  local ids = {}
  for i = 1, #popped, 2 do ids[#ids + 1] = popped[i] end

  local recs = redis.call('HMGET', K_TASKS, unpack(ids))
  local fence = take_fence(#ids)
  local deadline = fmt(now + lease_ms)
  local suffix = '|' .. worker
  local zargs, hargs, reply, items, expired = {}, {}, {}, {}, {}
  for i, id in ipairs(ids) do
    local rec = recs[i]
    if rec and expired_at(rec, now) then
      expired[#expired + 1] = {id, rec}
    elseif rec then -- a record deleted by hand is dropped from pending, never handed out
      local token = fmt(fence + i)
      zargs[#zargs + 1] = deadline
      zargs[#zargs + 1] = id
      hargs[#hargs + 1] = id
      hargs[#hargs + 1] = token .. suffix
      reply[#reply + 1] = id
      reply[#reply + 1] = token
      reply[#reply + 1] = deadline
      reply[#reply + 1] = rec
      if events_on() then ev_add(items, id, (rec_used(rec) + 1)) end
    end
  end
  if #zargs > 0 then
    put_leases(zargs, hargs)
    leases_given(worker, #zargs / 2)
    emit('claimed', worker, items, now)
  end
  lapse_tasks(expired, now, dead_ttl)
  if FLOW then wait = limits_lib().after(#zargs / 2, limit, wait, now, worker) end
  wait = wait or FAIR_WAIT
  if wait then reply[#reply + 1] = wait end
  return reply
end
