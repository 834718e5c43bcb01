-- include/events.lua — lifecycle events.
--@include args
--@include keys
--@include schema
--@include notify

-- Emit one lifecycle event for a call: XADD to the capped events stream (for listeners that must
-- not miss any) and PUBLISH on the events channel (live listeners). One event per call and type,
-- listing every task it concerns as "id:run", so a batch of 1000 costs one XADD, not 1000. The
-- run number never resets (a requeued dead task goes on counting), so two runs never share one.
-- `items` is built with ev_add; the cap EV_MAX was read by the schema check. `detail` (optional)
-- is what the event type carries besides its tasks (a `progress` event: "percent|message").
-- Stream entry fields: e (type), t (Redis time ms), w (worker or ''), x ("id:run,..."), and d
-- (the detail) when there is one.
-- Channel message: "<stream id>|<type>|<t>|<worker>|<tasks>", then "|<detail>" when there is one.
local function emit(etype, worker, items, now, detail)
  if #items == 0 or EV_MAX <= 0 then return end
  local t = fmt(now or now_ms())
  items[#items] = nil -- the trailing ','
  local x = table.concat(items)
  local sid, msg
  if detail then
    sid = redis.call('XADD', K_EVENTS, 'MAXLEN', '~', EV_MAX, '*', 'e', etype, 't', t, 'w', worker, 'x', x, 'd', detail)
    msg = sid .. '|' .. etype .. '|' .. t .. '|' .. worker .. '|' .. x .. '|' .. detail
  else
    sid = redis.call('XADD', K_EVENTS, 'MAXLEN', '~', EV_MAX, '*', 'e', etype, 't', t, 'w', worker, 'x', x)
    msg = sid .. '|' .. etype .. '|' .. t .. '|' .. worker .. '|' .. x
  end
  redis.call('PUBLISH', CHAN_EVENTS, msg)
end

-- Add "id:run," to an event's item list as separate parts, joined once by emit: no
-- intermediate string is created (and interned) per task.
local function ev_add(items, id, run)
  local n = #items
  items[n + 1] = id
  items[n + 2] = ':'
  items[n + 3] = run
  items[n + 4] = ','
end

-- Events are wanted (a caller may skip building the item list when they are off).
local function events_on()
  return EV_MAX > 0
end
