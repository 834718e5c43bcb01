#!lua flags=no-writes
--[[
name: counts
version: 5
purpose: Count the tasks of a queue in each state set. Read-only (runs on replicas).
keys:
  1-18: the queue keyset
touches: meta(r) pending(r) delayed(r) leased(r) done(r) dead(r) cancelled(r) wbeat(r) wf(r)
argv: none
reply: {pending, delayed, leased, done, dead, cancelled, paused (0/1), workers (registered),
  completed_total, failed_total (failed attempts), dead_total, expired_total (leases reclaimed),
  enqueued_total, retried_total (failed attempts scheduled again), aging_ms (the queue's priority
  aging, 0 = strict priority), lapsed_total (tasks that expired before a run could start),
  rate_interval_us (the rate limit: µs between two tasks, 0 = none), burst, concurrency (the
  cap, 0 = none), running (leases whose deadline has not passed: what the cap counts), held
  (what holds the queue back now: 0 nothing, 1 the rate, 2 the concurrency cap),
  held_rate_total, held_concurrency_total (claim and dispatch calls each limit cut short while
  tasks were pending), held_group_rate_total, held_group_concurrency_total (groups parked by
  their own rate or cap: include/fairpop.lua), group_concurrency, group_rate_interval_us,
  group_burst (the queue's defaults for its groups: configure; 0 = none), waiting (tasks
  waiting for their dependencies: include/deps.lua)}
  — integers. done/dead/cancelled may include tasks past retention not dropped yet.
errors:
  BADARG: fewer than the 18 queue keys
  VERSION: the queue holds another data schema version
bound: O(1)
]]
--@include args
--@include keys
--@include schema
--@include notify

local meta = check_schema('paused', 'n_done', 'n_failed', 'n_dead', 'n_expired', 'n_enq', 'n_retry', 'n_lapsed',
  'rl', 'rb', 'cc', 'hl', 'n_held_rate', 'n_held_concurrency', 'n_held_group_rate', 'n_held_group_concurrency', 'gc', 'gr', 'gb')
local held = ({rate = 1, concurrency = 2})[meta[13] or ''] or 0
return {redis.call('ZCARD', K_PENDING), redis.call('ZCARD', K_DELAYED), redis.call('ZCARD', K_LEASED),
  redis.call('ZCARD', K_DONE), redis.call('ZCARD', K_DEAD), redis.call('ZCARD', K_CANCELLED),
  meta[2] == '1' and 1 or 0, redis.call('ZCARD', K_WBEAT), tonumber(meta[3]) or 0,
  tonumber(meta[4]) or 0, tonumber(meta[5]) or 0, tonumber(meta[6]) or 0,
  tonumber(meta[7]) or 0, tonumber(meta[8]) or 0, AGING, tonumber(meta[9]) or 0,
  tonumber(meta[10]) or 0, tonumber(meta[11]) or 1, tonumber(meta[12]) or 0,
  redis.call('ZCOUNT', K_LEASED, fmt(now_ms()), '+inf'), held, tonumber(meta[14]) or 0, tonumber(meta[15]) or 0,
  tonumber(meta[16]) or 0, tonumber(meta[17]) or 0, tonumber(meta[18]) or 0, tonumber(meta[19]) or 0,
  tonumber(meta[20]) or 1, DEPS and redis.call('ZCARD', wkey('waiting')) or 0}
