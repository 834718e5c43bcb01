#!lua
--[[
name: start
version: 1
purpose: A worker marks the runs it has started: every lease it was given with a fencing token up
  to `token` has had its handler invoked. Reclaim charges an attempt for an expired lease only
  when its run started; a lease that expires before the mark is a stray — the worker died between
  claim and handler start — and goes back to pending uncharged (at most 3 times per task, the
  record's MAX_STRAYS). Tokens reach a worker in increasing order (claim and take both hand them
  out from the queue's fence counter at the moment of handing over), so one number per worker
  says it all: a worker calls this shortly after starting handlers, only while some started
  task is still held, and the cost does not grow with the number of tasks. A claim or take
  whose reply was lost (the connection broke after the script ran) hands out tokens the worker
  never saw: it names such a range as a gap, and leases in a gap are never counted as started.
keys:
  1-18: the queue keyset
touches: meta(r) wstat(rw)
argv:
  1: worker (string, 1-128 of [A-Za-z0-9-_:.]) — the worker's id
  2: token (int, 1..9007199254740991) — every lease of this worker with a token up to this one has
     started its run, except those in a gap
  then pairs (0..16 of them, MAX_GAPS), each a gap: tokens strictly between lo and hi never
  reached the worker — the queue keeps a worker's last 16 gaps:
    lo (int, 0..9007199254740991) — the highest token it received before a claim or take failed
      in transit
    hi (int, 0..9007199254740991) — the lowest token it received after that
reply: the worker's start mark after the call (int; it never goes down, a lower token changes
  nothing)
errors:
  BADARG: an argument is out of range; nothing was written
  VERSION: the queue holds another data schema version
  NOPERM: the Redis user lacks Baton's worker ACL rules; nothing was written
bound: O(1) (at most 16 gaps kept and sent)
  measured worst (cargo bench --bench worst_case, 16 gaps, 2-core VM): under 0.5 ms per call
]]
--@include args
--@include keys
--@include schema
--@include registry

local worker = id_arg(ARGV[1], 'worker')
local token = int_arg(ARGV[2], 'token', 1, 9007199254740991)
local np = groups_arg(2, 2, 0, MAX_GAPS, 'lo/hi pairs after worker and token')
local gaps = {}
for i = 1, np do
  local lo = int_arg(ARGV[1 + 2 * i], 'lo', 0, 9007199254740991)
  local hi = int_arg(ARGV[2 + 2 * i], 'hi', 0, 9007199254740991)
  if hi <= lo + 1 then bail('BADARG', 'gap ' .. fmt(lo) .. '..' .. fmt(hi) .. ' holds no token (hi must be above lo + 1)') end
  gaps[i] = fmt(lo) .. '-' .. fmt(hi)
end
require_worker()
check_schema()

add_gaps(worker, gaps)
return start_mark(worker, token)
