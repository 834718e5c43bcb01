-- include/deadletter.lua — the dead-letter selection shared by requeue and purge.
--@include args
--@include keys
--@include schema

-- ARGV = "ids", id... or "oldest", limit. Validates, checks the schema, and returns the ids (for
-- "ids": as given, up to 1000).
local function select_dead()
  local mode = ARGV[1]
  if mode == 'oldest' then
    local limit = int_arg(ARGV[2], 'limit', 1, MAX_BATCH)
    check_schema()
    return redis.call('ZRANGE', K_DEAD, 0, limit - 1)
  elseif mode == 'ids' then
    if #ARGV < 2 or #ARGV > MAX_BATCH + 1 then
      bail('BADARG', 'expected 1..' .. MAX_BATCH .. ' task ids after "ids", got ' .. (#ARGV - 1))
    end
    check_schema()
    local ids = {}
    for i = 2, #ARGV do ids[#ids + 1] = ARGV[i] end
    return ids
  end
  bail('BADARG', 'mode must be "ids" or "oldest", got ' .. tostring(mode))
end
