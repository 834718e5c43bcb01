#!lua
--[[
name: complete
version: 1
purpose: Acknowledge finished tasks (a batch): token-checked; stores each result for the task's
  result TTL, moves the task to `done`, and wakes result waiters.
keys:
  1-12: the queue keyset
argv:
  1: worker (string) — the worker's id
  then triples: id, token, result (bytes) — 1..1000 triples
reply: flat array, one status per triple, in order: 1 = completed, 0 = stale (the lease is not
  held by this worker and token any more: reclaimed, cancelled or already acknowledged; nothing
  changed for that task)
errors:
  BADARG: an argument is out of range or the triples are incomplete; nothing was written
  VERSION: the queue holds another data schema version
bound: O(n log N) for n <= 1000 triples
]]
--@include common

local worker = id_arg(ARGV[1], 'worker')
local nt = (#ARGV - 1) / 3
if nt < 1 or nt > MAX_BATCH or nt ~= math.floor(nt) then
  bail('BADARG', 'expected 1..' .. MAX_BATCH .. ' id/token/result triples after worker, got ' .. (#ARGV - 1) .. ' values')
end
check_schema(false)

local ids = {}
for i = 1, nt do ids[i] = ARGV[3 * i - 1] end
local leases = redis.call('HMGET', K_LEASE, unpack(ids))
local recs = redis.call('HMGET', K_TASKS, unpack(ids))
local now = now_ms()
local ok_ids, done_z, res_h, drop, reply = {}, {}, {}, {}, {}
local seen = {}
for i, id in ipairs(ids) do
  local v = leases[i]
  local token, owner, attempt = nil, nil, nil
  if v then token, owner, attempt = lease_parts(v) end
  if not seen[id] and token ~= nil and token == ARGV[3 * i] and owner == worker then
    seen[id] = true
    reply[i] = 1
    ok_ids[#ok_ids + 1] = id
    local t = recs[i] and parse_record(recs[i])
    local ttl = t and t.result_ttl or 0
    if ttl > 0 then
      done_z[#done_z + 1] = fmt(now + ttl)
      done_z[#done_z + 1] = id
      res_h[#res_h + 1] = id
      res_h[#res_h + 1] = attempt .. '|' .. fmt(now) .. '|' .. ARGV[3 * i + 1]
    else
      drop[#drop + 1] = id
    end
  else
    reply[i] = 0
  end
end
if #ok_ids > 0 then
  redis.call('HDEL', K_LEASE, unpack(ok_ids))
  redis.call('ZREM', K_LEASED, unpack(ok_ids))
  if #done_z > 0 then
    redis.call('ZADD', K_DONE, unpack(done_z))
    redis.call('HSET', K_RESULTS, unpack(res_h))
  end
  if #drop > 0 then
    -- result_ttl 0: the task is forgotten at once, with everything kept about it
    redis.call('HDEL', K_TASKS, unpack(drop))
    redis.call('HDEL', K_ATT, unpack(drop))
    redis.call('HDEL', K_ERRORS, unpack(drop))
  end
  notify_final(ok_ids)
end
return reply
