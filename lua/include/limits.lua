-- include/limits.lua — flow control: the queue's rate limit and concurrency cap, applied by the
-- scripts that hand out work (claim, take on a pull queue, dispatch) before anything is handed
-- out, so no worker ever checks a limit after the fact.
--
-- meta fields (written by configure; `fl` = '1' when either limit is on, read with the schema):
--   rl  rate: µs between two tasks at the sustained rate (0 or absent = no rate limit)
--   rb  burst: how many tasks may go at once after an idle spell (at least 1)
--   cc  concurrency cap: most leases alive at once across all workers (0 or absent = none)
--   tat the rate's theoretical arrival time, µs of Redis time (GCRA state)
--   hl  the limit holding the queue back now ('rate' or 'concurrency'), absent when none
--   cw  '1': a claim waits for a slot under the cap (include/notify.lua wakes it)
--   n_held_rate, n_held_concurrency: calls each limit cut short while tasks were pending
--
-- Rate: GCRA. A task may go at time t when tat <= t + (rb - 1) * rl; each task moves tat to
-- max(tat, t) + rl. So any window of length W holds at most W / rl + rb hand-outs, and a queue
-- with work gets one every rl µs. Cap: the leases whose deadline has not passed (ZCOUNT of
-- leased); a killed worker's slots free themselves when its leases expire, with no counter that
-- could leak.
--@include args
--@include keys
--@include schema
--@include notify
--@include events

-- The limits library, built on first use in a call: a queue without limits never pays for
-- defining these functions (each function of a script's body is a closure made on every call).
local LIMITS_LIB = nil

local function limits_lib()
  if LIMITS_LIB then return LIMITS_LIB end
  -- An event that concerns no task in particular, only its detail (`held`: "<limit>|<wait>").
  local function emit_detail(etype, worker, detail, now)
    if EV_MAX <= 0 then return end
    local t = fmt(now or now_ms())
    local sid = redis.call('XADD', K_EVENTS, 'MAXLEN', '~', EV_MAX, '*', 'e', etype, 't', t, 'w', worker, 'x', '', 'd', detail)
    redis.call('PUBLISH', CHAN_EVENTS, sid .. '|' .. etype .. '|' .. t .. '|' .. worker .. '||' .. detail)
  end

  local LIM = nil -- this call's limit state, read when the queue has limits

  -- How many of `want` tasks may be handed out now (0..want). When the limits cut the number,
  -- also which one ('rate' or 'concurrency') and the wait: ms until the rate admits one task more
  -- after these, or -1 under the cap (the end of a lease wakes the workers). `now` is Redis ms.
  local function room(want, now)
    local m = redis.call('HMGET', K_META, 'rl', 'rb', 'cc', 'tat', 'hl')
    local t = redis.call('TIME')
    LIM = {
      T = tonumber(m[1]) or 0, B = tonumber(m[2]) or 1, cap = tonumber(m[3]) or 0,
      tat = tonumber(m[4]) or 0, held = m[5], us = tonumber(t[1]) * 1000000 + tonumber(t[2]),
    }
    local k, limit, wait = want, nil, nil
    if LIM.cap > 0 then
      local room = LIM.cap - redis.call('ZCOUNT', K_LEASED, fmt(now), '+inf')
      if room < k then k, limit, wait = math.max(room, 0), 'concurrency', -1 end
    end
    if LIM.T > 0 and k > 0 then
      local start = math.max(LIM.tat, LIM.us)
      local slack = (LIM.B - 1) * LIM.T
      local fits = math.max(0, math.floor((LIM.us + slack - start) / LIM.T) + 1)
      if fits < k then
        k, limit = fits, 'rate'
        wait = math.max(1, math.ceil((start + fits * LIM.T - slack - LIM.us) / 1000))
      end
    end
    return k, limit, wait
  end

  -- After handing out `given` tasks: charge them to the rate, and record (or clear) what held the
  -- call back. `limit` is room's answer, kept only when tasks are still pending (a call cut
  -- short only by an empty queue was not held back). A new holder is announced once as a `held`
  -- event ("<limit>|<wait>", by `worker`: the claimer, or '' for dispatch). Returns the wait to
  -- reply when the call was held back, or nil.
  local function after(given, limit, wait, now, worker)
    local m = {}
    if LIM.T > 0 and given > 0 then
      m[#m + 1] = 'tat'
      m[#m + 1] = fmt(math.max(LIM.tat, LIM.us) + given * LIM.T)
    end
    if limit and redis.call('ZCARD', K_PENDING) == 0 then limit = nil end
    if limit then
      redis.call('HINCRBY', K_META, 'n_held_' .. limit, 1)
      if limit == 'concurrency' then
        m[#m + 1] = 'cw'
        m[#m + 1] = '1'
      end
      if LIM.held ~= limit then
        m[#m + 1] = 'hl'
        m[#m + 1] = limit
        emit_detail('held', worker, limit .. '|' .. fmt(wait), now)
      end
    elseif LIM.held then
      redis.call('HDEL', K_META, 'hl')
    end
    if #m > 0 then redis.call('HSET', K_META, unpack(m)) end
    if limit then return wait end
    return nil
  end

  LIMITS_LIB = {room = room, after = after}
  return LIMITS_LIB
end
