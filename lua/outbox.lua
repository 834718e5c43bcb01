#!lua
--[[
name: outbox
version: 1
purpose: Read this queue's outbox (include/outbox.lua: messages for other queues, which
  `deliver` applies there), acknowledging first the messages the caller delivered. A message
  is removed only if its sequence is still the one acknowledged: one written again after it
  was read stays, to be delivered again.
keys:
  1-18: the queue keyset
touches: meta(r) wf(rw)
argv:
  1: limit (int, 1..1000) — most messages to return
  then 0..1000 delivered messages of 2 fields:
    message (string) — as this script returned it
    seq (int, 1..9007199254740991) — its sequence, as this script returned it
reply: flat array, 2 per message (at most limit, oldest first): "<target queue>|<kind>|<a>|<b>"
  and its sequence; empty when the outbox is empty
errors:
  BADARG: an argument is missing or out of range; nothing was written
  VERSION: the queue holds another data schema version
  NOPERM: the Redis user may not run worker-side transitions (producer rules)
bound: O((a + r + limit) log M) for a acknowledged, r held between their sequences (at most
  the messages written meanwhile) and M messages held
]]
--@include args
--@include keys
--@include schema
--@include notify

local limit = int_arg(ARGV[1], 'limit', 1, MAX_BATCH)
local acks = (#ARGV - 1) / 2
if acks ~= math.floor(acks) or acks > MAX_BATCH then
  bail('BADARG', 'expected a limit, then 0..' .. MAX_BATCH .. ' messages of 2 fields (message, seq), got ' .. #ARGV .. ' arguments')
end
for i = 1, acks do int_arg(ARGV[2 * i + 1], 'seq', 1, 9007199254740991) end
check_schema()
require_worker()
local ob = wkey('ob')
if acks > 0 then
  -- what the outbox holds now between the lowest and highest sequence acknowledged, read in one
  -- call: a message is removed only while it still has the sequence acknowledged
  local lo, hi = math.huge, 0
  for i = 1, acks do
    local q = tonumber(ARGV[2 * i + 1])
    lo, hi = math.min(lo, q), math.max(hi, q)
  end
  local held = {}
  local r = redis.call('ZRANGEBYSCORE', ob, lo, hi, 'WITHSCORES')
  for i = 1, #r, 2 do held[r[i]] = r[i + 1] end
  local gone = {}
  for i = 1, acks do
    local m = ARGV[2 * i]
    if held[m] == ARGV[2 * i + 1] then gone[#gone + 1] = m end
  end
  for s = 1, #gone, 1000 do redis.call('ZREM', ob, unpack(gone, s, math.min(s + 999, #gone))) end
end
return redis.call('ZRANGE', ob, 0, limit - 1, 'WITHSCORES')
