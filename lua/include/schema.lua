-- include/schema.lua — the queue's data schema version, and the ACL check of worker-side
-- scripts. Every script reads meta through check_schema or stamp_schema before anything else.
--@include args
--@include keys

-- Data schema version of the queue (stored in meta field `v`). Bump on any change of the key
-- layout, record format or field meaning; scripts refuse a queue with another version.
local SCHEMA = '4'

-- Lifecycle events: stream length cap (meta field `ev`, set by the configure script; 0 = events
-- off). It lives here, not in events.lua, because the schema check reads it in the same HMGET,
-- so events cost no extra meta read.
local EVENTS_DEFAULT_MAX = 10000
local EV_MAX = EVENTS_DEFAULT_MAX

-- The queue's dispatch mode (meta field `dm`: "pull", "push", or false before configure), read
-- by the same HMGET: a pull queue has no dispatcher to tell that a lease ended.
local DM = false

-- Priority aging (meta field `ag`, set by configure): ms of waiting worth one priority step in
-- the pending order; 0 = off (strict priority). Read by the same HMGET; record.lua scores by it.
local AGING = 0

-- Whether any task of the queue was ever enqueued with an expiry (meta field `xp`, set by
-- enqueue): claim and take look for expired records only then, so queues that never use expiry
-- pay nothing per task for it.
local EXPIRING = false

-- Flow control (include/limits.lua): whether the queue has a rate limit or a concurrency cap
-- (meta field `fl`, set by configure), and whether a claim is waiting for a lease to end under
-- the cap (meta `cw`, set by a claim the cap held back; the end of a lease then wakes the
-- workers). Read by the same HMGET, so a queue without limits pays nothing more per call.
local FLOW = false
local CAP_WAIT = false

-- Fair queueing across groups (meta field `fq` = '1', set by configure: include/fair.lua), and
-- whether any group may have a limit of its own (meta `gk` = '1': the queue's group_concurrency
-- or group_rate, or a group's own cap or rate set by group_set).
local FAIR = false
local GLIM = false

-- Whether any task of the queue was enqueued with a cost other than 1 (meta `tc` = '1', set by
-- enqueue: include/limits.lua keeps the costs). Read by the same HMGET.
local COSTS = false

-- Whether any task of the queue was enqueued with dependencies (meta `wf` = '1', set by enqueue:
-- include/deps.lua). Read by the same HMGET.
local DEPS = false

-- Whether the queue ever had a flow or batch (meta `fw` = '1', set by flow_open:
-- include/flows.lua). Read by the same HMGET.
local FLOWS = false

-- ACL roles (docs/operations.md): the producer rules lack the commands only worker-side
-- transitions use (ZPOPMIN, ZREM, HDEL...). Every script but enqueue and the read-only ones
-- checks up front that the caller may run ZPOPMIN, so a producer gets NOPERM before any write —
-- never a half-done transition (Redis checks each command inside a script against the
-- caller's ACL, and does not roll back). EVALSHA itself needs access to every declared key, so
-- roles differ by command, not by key.
local function require_worker()
  if not redis.acl_check_cmd('ZPOPMIN', K_PENDING, '1') then
    bail('NOPERM', 'this Redis user may not run worker-side transitions on ' .. K_PENDING ..
      ' (producer rules?); run workers, schedulers and operator commands as a user with the worker rules')
  end
end

-- Check the queue's schema version; a queue not stamped yet (no `v`) passes. Returns the meta
-- fields asked for after `v` (e.g. `paused`). Never writes, so read-only scripts can use it.
local function check_schema(...)
  local fields = {'v', ...}
  fields[#fields + 1] = 'ev'
  fields[#fields + 1] = 'dm'
  fields[#fields + 1] = 'ag'
  fields[#fields + 1] = 'xp'
  fields[#fields + 1] = 'fl'
  fields[#fields + 1] = 'cw'
  fields[#fields + 1] = 'fq'
  fields[#fields + 1] = 'gk'
  fields[#fields + 1] = 'tc'
  fields[#fields + 1] = 'wf'
  fields[#fields + 1] = 'fw'
  local got = redis.call('HMGET', K_META, unpack(fields))
  local f = #fields
  EV_MAX = tonumber(got[f - 10]) or EVENTS_DEFAULT_MAX
  DM = got[f - 9]
  AGING = tonumber(got[f - 8]) or 0
  EXPIRING = got[f - 7] == '1'
  FLOW = got[f - 6] == '1'
  CAP_WAIT = got[f - 5] == '1'
  FAIR = got[f - 4] == '1'
  GLIM = FAIR and got[f - 3] == '1'
  COSTS = got[f - 2] == '1'
  DEPS = got[f - 1] == '1'
  FLOWS = got[f] == '1'
  local v = got[1]
  if v ~= false and v ~= SCHEMA then
    bail('VERSION', 'queue ' .. K_META .. ' has data schema v' .. v .. ' but these scripts are v' .. SCHEMA ..
      '; run a baton release whose scripts match the queue (see docs/contract.md)')
  end
  return got
end

-- check_schema for the scripts that may create a queue (enqueue, configure, pause, register):
-- a queue not stamped yet gets this version.
local function stamp_schema(...)
  local got = check_schema(...)
  if got[1] == false then redis.call('HSET', K_META, 'v', SCHEMA) end
  return got
end
