-- include/notify.lua — the queue's pub/sub channels and what is published on them.
--@include keys
--@include schema

-- Pub/sub channels are derived from the meta key (`<prefix>:{q}:meta` -> `<prefix>:{q}:wake`).
local CHAN_BASE = string.sub(K_META, 1, -5)
local CHAN_WAKE = CHAN_BASE .. 'wake'
local CHAN_FIN = CHAN_BASE .. 'fin'
local CHAN_FREE = CHAN_BASE .. 'free'
local CHAN_EVENTS = CHAN_BASE .. 'events'

-- A key of the queue's dependencies (include/deps.lua), derived the same way: `waiting`,
-- `wx:<id>`, `wo:<id>`.
local function wkey(role)
  return CHAN_BASE .. role
end

-- Wake sleeping workers when pending goes from empty to non-empty ('p'), or the maintenance
-- loop when the earliest delayed task changed ('d'). Workers stay subscribed, so a wake sent
-- after their last empty claim is never missed.
local function wake_pending(was_empty)
  if was_empty then redis.call('PUBLISH', CHAN_WAKE, 'p') end
end

local function wake_delayed_if_first(run_at)
  local first = redis.call('ZRANGE', K_DELAYED, 0, 0, 'WITHSCORES')
  if first[2] == nil or tonumber(first[2]) >= run_at then
    redis.call('PUBLISH', CHAN_WAKE, 'd')
  end
end

-- Tell result waiters that these tasks reached a final state (done, dead, cancelled).
local function notify_final(ids)
  if #ids > 0 then redis.call('PUBLISH', CHAN_FIN, table.concat(ids, ',')) end
end

-- Capacity was freed (a lease ended): push dispatchers may assign more. A queue configured for
-- pull has no dispatcher, so nothing is published there — unless a claim is waiting for a slot
-- under the queue's concurrency cap (meta `cw`): then the workers are woken once ('p') and the
-- flag is cleared (a claim the cap holds back again sets it again).
local function signal_free()
  if DM ~= 'pull' then redis.call('PUBLISH', CHAN_FREE, '1') end
  if CAP_WAIT then
    redis.call('HDEL', K_META, 'cw')
    redis.call('PUBLISH', CHAN_WAKE, 'p')
    CAP_WAIT = false
  end
end
