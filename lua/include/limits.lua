-- include/limits.lua — flow control: the queue's rate limit and concurrency cap, applied by the
-- scripts that hand out work (claim, take on a pull queue, dispatch) before anything is handed
-- out, so no worker ever checks a limit after the fact; and the rate arithmetic (GCRA) that the
-- groups' own rate limits share (include/fairpop.lua).
--
-- meta fields (written by configure; `fl` = '1' when either limit is on, read with the schema):
--   rl  rate: µs between two tasks at the sustained rate (0 or absent = no rate limit)
--   rb  burst: how many tasks may go at once after an idle spell (at least 1)
--   cc  concurrency cap: most leases alive at once across all workers (0 or absent = none)
--   tat the rate's theoretical arrival time, µs of Redis time (GCRA state)
--   hl  the limit holding the queue back now ('rate' or 'concurrency'), absent when none
--   cw  '1': a claim waits for a slot under the cap (include/notify.lua wakes it)
--   tc  '1': some task of the queue was enqueued with a cost other than 1 (enqueue; read with
--       the schema); the costs are in the hash `<prefix>:{q}:tcost` (id -> cost), beside the
--       groups' keys, and dropped with the task
--   n_held_rate, n_held_concurrency: calls each limit cut short while tasks were pending
--
-- Rate: GCRA. A task of cost c (default 1) may go at time t when max(tat, t) + c * rl <= t + rb *
-- rl, and moves tat to max(tat, t) + c * rl. So any window of length W holds hand-outs of at most
-- W / rl + rb cost in all, and a queue with work gets one cost unit every rl µs. A task costing
-- more than the burst could never fit: it goes when the limit is idle (tat <= t) and is charged
-- its whole cost, so the rate holds over time (a window holding it may exceed the burst by its
-- cost minus the burst). Cap: the leases whose deadline has not passed (ZCOUNT of
-- leased); a killed worker's slots free themselves when its leases expire, with no counter that
-- could leak.
--@include args
--@include keys
--@include schema
--@include notify
--@include fair
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

  local US = nil -- Redis time in µs, read once per call

  local function now_us()
    if US == nil then
      local t = redis.call('TIME')
      US = tonumber(t[1]) * 1000000 + tonumber(t[2])
    end
    return US
  end

  -- GCRA for one task per T µs with burst B and state tat, at this call's time: how many tasks of
  -- cost 1 may go now.
  local function fits(tat, T, B)
    local us = now_us()
    return math.max(0, math.floor((us + B * T - math.max(tat, us)) / T))
  end

  -- Redis µs from which a task of cost c may go: when max(tat, t) + c * T <= t + B * T; a task
  -- costing more than the burst could never fit, so it goes when the limit is idle (tat <= t).
  local function ready_us(tat, T, B, c)
    if c > B then return tat end
    return tat + (c - B) * T
  end

  -- The state after a task of cost c went (charged its whole cost), or nil when it may not go now.
  local function charge(tat, T, B, c)
    local us = now_us()
    if ready_us(tat, T, B, c) > us then return nil end
    return math.max(tat, us) + c * T
  end

  -- ms until a task of cost c may go (at least 1).
  local function wait_ms(tat, T, B, c)
    return math.max(1, math.ceil((ready_us(tat, T, B, c) - now_us()) / 1000))
  end

  -- The Redis ms (rounded up) from which a task of cost c may go.
  local function ready_ms(tat, T, B, c)
    return math.ceil(math.max(ready_us(tat, T, B, c), now_us()) / 1000)
  end

  -- A task's cost (tasks without one cost 1), for the ids given.
  local function costs_of(ids)
    local cs = redis.call('HMGET', gkey('tcost'), unpack(ids))
    for i = 1, #ids do cs[i] = tonumber(cs[i]) or 1 end
    return cs
  end

  local LIM = nil -- this call's limit state, read when the queue has limits

  -- How many of `want` tasks may be handed out now (0..want), counting each as cost 1 (a bound:
  -- the hand-out walks the costs when the queue has any, see `take`). When the limits cut the
  -- number, also which one ('rate' or 'concurrency') and the wait: ms until the rate admits one
  -- task more after these, or -1 under the cap (the end of a lease wakes the workers). `now` is
  -- Redis ms.
  local function room(want, now)
    local m = redis.call('HMGET', K_META, 'rl', 'rb', 'cc', 'tat', 'hl')
    LIM = {
      T = tonumber(m[1]) or 0, B = tonumber(m[2]) or 1, cap = tonumber(m[3]) or 0,
      tat = tonumber(m[4]) or 0, held = m[5],
    }
    LIM.cur = LIM.tat
    local k, limit, wait = want, nil, nil
    if LIM.cap > 0 then
      local room = LIM.cap - redis.call('ZCOUNT', K_LEASED, fmt(now), '+inf')
      if room < k then k, limit, wait = math.max(room, 0), 'concurrency', -1 end
    end
    if LIM.T > 0 and k > 0 then
      local n = fits(LIM.tat, LIM.T, LIM.B)
      if n < k then
        k, limit = n, 'rate'
        wait = wait_ms(math.max(LIM.tat, now_us()) + n * LIM.T, LIM.T, LIM.B, 1)
      end
    end
    return k, limit, wait
  end

  -- The queue's rate must be charged task by task (it has a rate and tasks with costs).
  local function walks()
    return COSTS and LIM ~= nil and LIM.T > 0
  end

  -- May one more task of cost c go under the queue's rate, after those taken so far in this
  -- call? If so it is charged; if not, the wait for it is kept for the reply.
  local function take(c)
    if LIM == nil or LIM.T == 0 then return true end
    local nt = charge(LIM.cur, LIM.T, LIM.B, c)
    if nt == nil then
      LIM.cut = wait_ms(LIM.cur, LIM.T, LIM.B, c)
      return false
    end
    LIM.cur, LIM.walked = nt, true
    return true
  end

  -- Pop up to k pending tasks in order, as many as the queue's rate admits by their costs
  -- (id, score pairs like ZPOPMIN).
  local function pop_costed(k)
    local got = redis.call('ZRANGE', K_PENDING, 0, k - 1, 'WITHSCORES')
    if #got == 0 then return got end
    local ids = {}
    for i = 1, #got, 2 do ids[#ids + 1] = got[i] end
    local cs = costs_of(ids)
    local out, gone = {}, {}
    for i, id in ipairs(ids) do
      if not take(cs[i]) then break end
      out[#out + 1] = id
      out[#out + 1] = got[2 * i]
      gone[#gone + 1] = id
    end
    if #gone > 0 then redis.call('ZREM', K_PENDING, unpack(gone)) end
    return out
  end

  -- After handing out `given` tasks: charge them to the rate, and record (or clear) what held the
  -- call back. `limit` is room's answer (a cost the rate could not take yet overrides it), kept
  -- only when tasks are still pending (a call cut short only by an empty queue was not held
  -- back). A new holder is announced once as a `held` event ("<limit>|<wait>", by `worker`: the
  -- claimer, or '' for dispatch). Returns the wait to reply when the call was held back, or nil.
  local function after(given, limit, wait, now, worker)
    local m = {}
    if LIM.walked then
      m[#m + 1] = 'tat'
      m[#m + 1] = fmt(LIM.cur)
    elseif LIM.T > 0 and given > 0 then
      m[#m + 1] = 'tat'
      m[#m + 1] = fmt(math.max(LIM.tat, now_us()) + given * LIM.T)
    end
    if LIM.cut then limit, wait = 'rate', LIM.cut end
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

  LIMITS_LIB = {
    room = room, after = after, walks = walks, take = take, pop_costed = pop_costed,
    now_us = now_us, fits = fits, charge = charge, wait_ms = wait_ms, ready_ms = ready_ms, costs_of = costs_of, emit_detail = emit_detail,
  }
  return LIMITS_LIB
end
