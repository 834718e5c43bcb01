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

-- Write one message for queue `target`.
local function outbox_put(target, kind, a, b)
  local ob = wkey('ob')
  if redis.call('ZCARD', ob) == 0 then redis.call('PUBLISH', CHAN_BASE .. 'outbox', 'o') end
  redis.call('ZADD', ob, redis.call('HINCRBY', K_META, 'obs', 1), target .. '|' .. kind .. '|' .. a .. '|' .. b)
end
