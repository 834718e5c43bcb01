-- include/registry.lua — the worker registry's counters.
--@include keys

-- Kept by the same scripts that move leases, so they never drift from the real leases:
-- winfl = leases held (in flight), wstat = "<worker>:a" assigned, ":c" completed, ":f" failed
-- attempts, ":b" busy ms, ":s" start mark (the highest fencing token whose run the worker has
-- started, and every lower one of its leases too: the start script), ":g" its last gaps
-- ("lo-hi,..." token ranges that never reached it: lost claim replies).
local function inflight_add(worker, n)
  if n ~= 0 then redis.call('HINCRBY', K_WINFL, worker, n) end
end

local function stat_add(worker, field, n)
  if n ~= 0 then redis.call('HINCRBY', K_WSTAT, worker .. ':' .. field, n) end
end

-- Lower the in-flight counter of a worker whose lease was taken from it (cancel, reclaim). A
-- worker pruned from the registry meanwhile keeps no counter: HINCRBY would create one again.
local function inflight_lost(worker, n)
  if redis.call('HEXISTS', K_WINFL, worker) == 1 then inflight_add(worker, -n) end
end

-- Drop a worker's statistics and its dispatch state (its smooth weighted round-robin share in
-- meta), when it leaves the registry.
local function forget_worker_stats(worker)
  redis.call('HDEL', K_WSTAT, worker .. ':a', worker .. ':c', worker .. ':f', worker .. ':b', worker .. ':s', worker .. ':g')
  redis.call('HDEL', K_META, 'sw:' .. worker)
end

-- Raise `worker`'s start mark to `token` (never lower it); returns the mark.
local function start_mark(worker, token)
  local f = worker .. ':s'
  local cur = tonumber(redis.call('HGET', K_WSTAT, f)) or 0
  if token > cur then
    redis.call('HSET', K_WSTAT, f, fmt(token))
    cur = token
  end
  return cur
end

-- Most gaps kept per worker (and sent per start call).
local MAX_GAPS = 16

-- Append gaps ("lo-hi" strings) to `worker`'s list, keeping the last MAX_GAPS.
local function add_gaps(worker, gaps)
  if #gaps == 0 then return end
  local f = worker .. ':g'
  local all = {}
  local old = redis.call('HGET', K_WSTAT, f)
  if old then
    for g in string.gmatch(old, '[^,]+') do all[#all + 1] = g end
  end
  for _, g in ipairs(gaps) do all[#all + 1] = g end
  local first = math.max(1, #all - MAX_GAPS + 1)
  redis.call('HSET', K_WSTAT, f, table.concat(all, ',', first, #all))
end

-- Start marks of `owners` (worker ids): a function started(worker, token) telling whether that
-- worker has marked the run of its lease with that token started. One HMGET for all owners.
local function start_marks(owners)
  local marks, gaps = {}, {}
  if #owners > 0 then
    local fields = {}
    for i, w in ipairs(owners) do
      fields[2 * i - 1] = w .. ':s'
      fields[2 * i] = w .. ':g'
    end
    local v = redis.call('HMGET', K_WSTAT, unpack(fields))
    for i, w in ipairs(owners) do
      marks[w] = tonumber(v[2 * i - 1]) or 0
      if v[2 * i] then
        local list = {}
        for lo, hi in string.gmatch(v[2 * i], '(%d+)-(%d+)') do
          list[#list + 1] = tonumber(lo)
          list[#list + 1] = tonumber(hi)
        end
        gaps[w] = list
      end
    end
  end
  return function(worker, token)
    if token > (marks[worker] or 0) then return false end
    local g = gaps[worker]
    if g then
      for j = 1, #g, 2 do
        if token > g[j] and token < g[j + 1] then return false end
      end
    end
    return true
  end
end
