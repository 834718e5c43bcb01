#!lua
--[[
name: promote
version: 1
purpose: Move due delayed tasks (delays and retry backoffs) to pending, a bounded batch per call.
keys:
  1-18: the queue keyset
touches: meta(rw) tasks(r) pending(rw) delayed(rw) events(w) groups(rw)
argv:
  1: limit (int, 1..1000) — most tasks moved in this call
reply: {promoted (int), next_in_ms (int, ms from now until the earliest remaining delayed task is
  due, 0 if already due, -1 if none)}
errors:
  BADARG: an argument is out of range; nothing was written
  VERSION: the queue holds another data schema version
  NOPERM: the Redis user lacks Baton's worker ACL rules; nothing was written
bound: O(limit log N)
]]
--@include args
--@include keys
--@include schema
--@include record
--@include notify
--@include events
--@include fair

local limit = int_arg(ARGV[1], 'limit', 1, MAX_BATCH)
require_worker()
check_schema()

local now = now_ms()
local ids = redis.call('ZRANGEBYSCORE', K_DELAYED, '-inf', fmt(now), 'LIMIT', 0, limit)
local promoted = 0
if #ids > 0 then
  local recs = redis.call('HMGET', K_TASKS, unpack(ids))
  local was_empty = redis.call('ZCARD', K_PENDING) == 0
  local seq = take_seq(#ids)
  local zargs, items = {}, {}
  for i, id in ipairs(ids) do
    local t = recs[i] and parse_record(recs[i])
    if t then
      zargs[#zargs + 1] = fmt(pending_score(t.prio, seq + i - 1, now))
      zargs[#zargs + 1] = id
      ev_add(items, id, t.used)
    end
  end
  redis.call('ZREM', K_DELAYED, unpack(ids))
  if #zargs > 0 then
    pend_many(zargs)
    promoted = #zargs / 2
  end
  wake_pending(was_empty and promoted > 0)
  emit('promoted', '', items, now)
end
local nxt = redis.call('ZRANGE', K_DELAYED, 0, 0, 'WITHSCORES')
return {promoted, nxt[2] and math.max(0, tonumber(nxt[2]) - now) or -1}
