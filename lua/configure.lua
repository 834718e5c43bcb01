#!lua
--[[
name: configure
version: 4
purpose: Store a queue's settings that the other scripts read from meta: the lifecycle events
  stream cap, priority aging, flow control (rate limit, burst, concurrency cap: include/limits.lua)
  the groups' default limits (include/fairpop.lua) and the dispatch mode (pull: dispatch assigns nothing and take claims like claim;
  push: dispatch assigns). Run by baton-scheduler and baton-worker at start from their [queues] config; until
  then a queue uses the defaults (events on, 10000 stream entries).
keys:
  1-18: the queue keyset
touches: meta(rw) pending(r) events(w)
argv:
  1: events_max_len (int, 0..100000000) — approximate cap (MAXLEN ~) of the events stream, in
    entries (one entry per script call and event type); 0 = no events (no XADD, no PUBLISH)
  2: dispatch (string, "pull" or "push") — how tasks reach workers on this queue
  3: aging_ms (int, 0..86400000) — priority aging: ms of waiting worth one priority step in the
    pending order (0 = strict priority); turning it on or off is refused while tasks are pending
  4: rate_interval_us (int, 0..86400000000) — rate limit as the µs between two tasks at the
    sustained rate (200/s = 5000), enforced by claim, take and dispatch; 0 = no rate limit
  5: burst (int, 1..1000000) — how many tasks the rate lets go at once after an idle spell
  6: concurrency (int, 0..1000000) — most leases alive at once on the queue across all workers;
    0 = no cap
  7: fairness (string, "fifo" or "fair") — fifo: claim and dispatch take tasks by priority, then
    first in first out; fair: they share the work between the groups that have some, by
    weighted fair queueing (include/fair.lua); switching is refused while tasks are pending
  8: group_concurrency (int, 0..1000000) — on a fair queue, most leases alive at once per group
    (a group's own cap, group_set, overrides it); 0 = none
  9: group_rate_interval_us (int, 0..86400000000) — on a fair queue, every group's rate limit as
    the µs between two of its tasks (a group's own rate, group_set, overrides it); 0 = none
  10: group_burst (int, 1..1000000) — the burst of those group rates (a group's own burst
    overrides it)
reply: the dispatch mode stored before ("pull", "push", or "" for a new queue)
errors:
  BADARG: an argument is out of range, or aging would be turned on or off while tasks are
    pending; nothing was written
  VERSION: the queue holds another data schema version
  NOPERM: the Redis user lacks Baton's worker ACL rules; nothing was written
bound: O(1)
]]
--@include args
--@include keys
--@include schema

-- ARGV value v, which must be a or b (BADARG naming the argument otherwise).
local function either(v, name, a, b)
  if v ~= a and v ~= b then
    bail('BADARG', name .. ' must be "' .. a .. '" or "' .. b .. '", got ' .. tostring(v))
  end
  return v
end

local ev = int_arg(ARGV[1], 'events_max_len', 0, 100000000)
local dm = either(ARGV[2], 'dispatch', 'pull', 'push')
local aging = int_arg(ARGV[3], 'aging_ms', 0, 86400000)
local rate = int_arg(ARGV[4], 'rate_interval_us', 0, 86400000000)
local burst = int_arg(ARGV[5], 'burst', 1, 1000000)
local cap = int_arg(ARGV[6], 'concurrency', 0, 1000000)
local fairness = either(ARGV[7], 'fairness', 'fifo', 'fair')
local gcap = int_arg(ARGV[8], 'group_concurrency', 0, 1000000)
local grate = int_arg(ARGV[9], 'group_rate_interval_us', 0, 86400000000)
local gburst = int_arg(ARGV[10], 'group_burst', 1, 1000000)
if (gcap > 0 or grate > 0) and fairness ~= 'fair' then
  bail('BADARG', (gcap > 0 and 'group_concurrency' or 'group_rate_interval_us') ..
    ' needs fairness "fair" (groups are kept apart only on a fair queue)')
end
require_worker()
check_schema()
-- Strict-priority and aged scores are different orders: mixing them in one pending set would
-- interleave the tasks at random, so turning aging on or off waits for an empty pending set.
-- Changing its value while on is fine (every score stays a time).
if (AGING > 0) ~= (aging > 0) then
  local waiting = redis.call('ZCARD', K_PENDING)
  if waiting > 0 then
    bail('BADARG', 'aging_ms: queue ' .. K_META .. ' has ' .. waiting .. ' pending tasks ordered ' ..
      (AGING > 0 and 'with' or 'without') .. ' priority aging; turning it ' .. (aging > 0 and 'on' or 'off') ..
      ' would interleave two orders. Keep the old setting until the queue drains (pause producers, or ' ..
      'use a new queue), then restart with the new one')
  end
end
-- A fair queue files each pending task in its group's set too: switching either way with tasks
-- pending would leave them out of the order the new mode reads.
if FAIR ~= (fairness == 'fair') then
  local waiting = redis.call('ZCARD', K_PENDING)
  if waiting > 0 then
    bail('BADARG', 'fairness: queue ' .. K_META .. ' has ' .. waiting .. ' pending tasks in ' ..
      (FAIR and 'fair' or 'fifo') .. ' order; switching to ' .. fairness .. ' waits until none is pending ' ..
      '(pause producers or use a new queue, let it drain, then restart with the new setting)')
  end
end
local before = DM or ''
-- check_schema passed: `v` is this version or absent, so stamping it again is harmless
redis.call('HSET', K_META, 'v', SCHEMA, 'ev', ev, 'dm', dm, 'ag', aging)
if fairness == 'fair' then redis.call('HSET', K_META, 'fq', '1') else redis.call('HDEL', K_META, 'fq') end
-- gk stays once set: a group's own limits (group_set) may exist without a queue default
if gcap > 0 then
  redis.call('HSET', K_META, 'gc', gcap, 'gk', '1')
else
  redis.call('HDEL', K_META, 'gc')
end
if grate > 0 then
  redis.call('HSET', K_META, 'gr', fmt(grate), 'gb', fmt(gburst), 'gk', '1')
else
  redis.call('HDEL', K_META, 'gr', 'gb')
end
-- Flow control: `fl` tells every script's schema read whether to look at the limits at all.
-- The rate's state (tat) is kept across restarts with the same or a new rate.
if rate > 0 or cap > 0 then
  redis.call('HSET', K_META, 'fl', '1', 'rl', fmt(rate), 'rb', fmt(burst), 'cc', fmt(cap))
else
  redis.call('HDEL', K_META, 'fl', 'rl', 'rb', 'cc', 'tat', 'hl', 'cw')
end
if ev == 0 then redis.call('DEL', K_EVENTS) end
return before
