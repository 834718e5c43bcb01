-- include/drop.lua — dropping finished tasks.
--@include keys
--@include schema
--@include notify
--@include fair

-- Drop finished tasks now, with everything kept about them.
local function drop_tasks(ids)
  if #ids > 0 then
    redis.call('HDEL', K_TASKS, unpack(ids))
    redis.call('HDEL', K_RESULTS, unpack(ids))
    redis.call('HDEL', K_ERRORS, unpack(ids))
    redis.call('HDEL', K_PROGRESS, unpack(ids))
    redis.call('HDEL', gkey('tgroup'), unpack(ids))
    if COSTS then redis.call('HDEL', gkey('tcost'), unpack(ids)) end
    if DEPS then
      -- a task's own dependency record (the lists of its dependents went when it ended)
      local wx = {}
      for i, id in ipairs(ids) do wx[i] = wkey('wx:' .. id) end
      redis.call('DEL', unpack(wx))
    end
  end
end
