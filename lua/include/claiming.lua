-- include/claiming.lua — hand out up to n pending tasks under leases (claim; take on a queue in
-- pull mode). Hot path: a constant number of Redis commands per batch, no record parsing.
--@include args
--@include keys
--@include schema
--@include record
--@include notify
--@include registry
--@include lease
--@include events

-- Pop up to n pending tasks (highest priority first) and lease them to `worker`; the reply rows
-- are id, token, deadline_ms, record.
local function claim_pending(worker, n, lease_ms)
  local popped = redis.call('ZPOPMIN', K_PENDING, n)
  if #popped == 0 then return {} end
  local ids = {}
  for i = 1, #popped, 2 do ids[#ids + 1] = popped[i] end

  local recs = redis.call('HMGET', K_TASKS, unpack(ids))
  local fence = take_fence(#ids)
  local now = now_ms()
  local deadline = fmt(now + lease_ms)
  local suffix = '|' .. worker
  local zargs, hargs, reply, items = {}, {}, {}, {}
  for i, id in ipairs(ids) do
    local rec = recs[i]
    if rec then -- a record deleted by hand is dropped from pending, never handed out
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
  return reply
end
