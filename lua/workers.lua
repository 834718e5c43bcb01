#!lua flags=no-writes
--[[
name: workers
version: 1
purpose: List the queue's registered workers with their description and heartbeat age.
  Read-only (runs on replicas).
keys:
  1-18: the queue keyset
touches: meta(r) workers(r) wbeat(r) winfl(r) wstat(r)
argv:
  1: limit (int, 1..1000) — most workers listed (most recently seen first)
reply: flat array, 8 entries per worker: id, info (JSON string given at register),
  last_seen_ms_ago, inflight (leases held now), assigned, completed, failed (totals), busy_ms
errors:
  BADARG: an argument is out of range
  VERSION: the queue holds another data schema version
bound: O(limit log N)
]]
--@include args
--@include keys
--@include schema

local limit = int_arg(ARGV[1], 'limit', 1, MAX_BATCH)
check_schema()
local now = now_ms()
local beats = redis.call('ZRANGE', K_WBEAT, 0, limit - 1, 'REV', 'WITHSCORES')
local reply = {}
for i = 1, #beats, 2 do
  reply[#reply + 1] = beats[i]
  reply[#reply + 1] = redis.call('HGET', K_WORKERS, beats[i]) or '{}'
  reply[#reply + 1] = math.max(0, now - tonumber(beats[i + 1]))
  local w = beats[i]
  local s = redis.call('HMGET', K_WSTAT, w .. ':a', w .. ':c', w .. ':f', w .. ':b')
  reply[#reply + 1] = tonumber(redis.call('HGET', K_WINFL, w) or '0')
  for j = 1, 4 do reply[#reply + 1] = tonumber(s[j] or '0') end
end
return reply
