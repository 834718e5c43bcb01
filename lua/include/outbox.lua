-- include/outbox.lua — what a queue has to tell another queue: dependencies across queues. A
-- script touches one queue only (on a cluster another queue lives in another slot), so a
-- transition that concerns a task of another queue writes a message to its own queue's outbox
-- in the same call, and a maintenance loop of the processes serving the queue carries it:
-- `outbox` reads the messages and acknowledges the ones delivered, `deliver` applies them on
-- the queue they are addressed to. Delivery is at least once; applying a message twice changes
-- nothing the first time did not.
--
-- Key `<prefix>:{q}:ob` (zset; role `wf` in headers), members "<target queue>|<kind>|<a>|<b>",
-- scored by a sequence (meta `obs`), so a message written again after it was read gets a new
-- score, and an acknowledgement carrying the old score leaves it in place:
--   "<A>|w|<id>|<B>/<dep>"        task <dep> of queue B waits for task <id> of queue A
--   "<B>|s|<A>/<id>|<outcome>"    task <id> of queue A ended <outcome> (done, dead, cancelled)
-- The channel `<prefix>:{q}:outbox` gets 'o' when a message is written to an empty outbox.
--@include args
--@include keys
--@include schema
--@include notify

-- This queue's name (the hash tag of its keys).
local QUEUE_NAME = string.match(K_META, '{([^}]*)}:meta$')

-- "<queue>/<id>", a task of another queue as dependencies name it: its queue and id (nil, nil
-- for an id of this queue).
local function remote_ref(dep)
  return string.match(dep, '^([^/]+)/([^/]+)$')
end

-- An id that other queues name: a task id, or "#<flow>" for the seal of a flow.
local function ref_id_arg(v, name)
  if type(v) == 'string' and string.sub(v, 1, 1) == '#' then
    id_arg(string.sub(v, 2), name)
  else
    id_arg(v, name)
  end
  return v
end

-- Messages written by this call, flushed together (outbox_flush): one sequence step, one ZADD.
local OUTBOX_BUF = {}

-- Write one message for queue `target` (at the next outbox_flush, in this call).
local function outbox_put(target, kind, a, b)
  OUTBOX_BUF[#OUTBOX_BUF + 1] = target .. '|' .. kind .. '|' .. a .. '|' .. b
end

-- Write the messages put since the last flush. Every script that may put one flushes before it
-- returns (deps_settle and flows_final do at their end; enqueue and deliver at theirs).
local function outbox_flush()
  local n = #OUTBOX_BUF
  if n == 0 then return end
  local ob = wkey('ob')
  if redis.call('ZCARD', ob) == 0 then redis.call('PUBLISH', CHAN_BASE .. 'outbox', 'o') end
  local last = redis.call('HINCRBY', K_META, 'obs', n)
  local args = {}
  for i, m in ipairs(OUTBOX_BUF) do
    args[#args + 1] = last - n + i
    args[#args + 1] = m
  end
  for s = 1, #args, 2000 do -- unpack takes a few thousand values at most
    redis.call('ZADD', ob, unpack(args, s, math.min(s + 1999, #args)))
  end
  OUTBOX_BUF = {}
end
