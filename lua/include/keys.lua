-- include/keys.lua — the queue keyset.
--@include args
--
-- Every script takes the same 18 queue keys first, all sharing the queue's hash tag `{queue}`,
-- so a queue lives in one cluster slot. A script declares every key it touches; extra per-call
-- keys (idempotency keys) follow the keyset.
local K_META, K_TASKS, K_PENDING, K_DELAYED, K_LEASED, K_LEASE =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local K_DONE, K_DEAD, K_CANCELLED, K_RESULTS, K_ERRORS, K_WORKERS, K_WBEAT =
  KEYS[7], KEYS[8], KEYS[9], KEYS[10], KEYS[11], KEYS[12], KEYS[13]
local K_ASSIGNED, K_WINFL, K_WSTAT, K_EVENTS, K_PROGRESS = KEYS[14], KEYS[15], KEYS[16], KEYS[17], KEYS[18]
local NKEYS = 18

if #KEYS < NKEYS then
  bail('BADARG', 'expected the 18 queue keys first, got ' .. #KEYS .. ' keys')
end
