-- include/args.lua — errors, numbers and time, and the checks of ARGV values. Needs no other
-- include, so every other one can use it.

-- Raise a named error. Every script validates all of its input before its first write, so a
-- raised error leaves no partial write.
local function bail(code, msg)
  error({err = code .. ' ' .. msg})
end

-- Numbers are always formatted by hand: Lua's `..` turns a number into a string with "%.14g",
-- which would round large scores and timestamps (redis.call itself uses "%.17g").
local function fmt(n)
  return string.format('%.0f', n)
end

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local MAX_BATCH = 1000
-- The largest duration any argument may give (ten years of 365 days): Redis time plus this stays
-- far below 2^53, so every deadline and expiry score is exact in a double.
local MAX_MS = 315360000000

-- Parse an integer ARGV value within [lo, hi] or raise BADARG naming the argument.
local function int_arg(v, name, lo, hi)
  local n = tonumber(v)
  if n == nil or n ~= math.floor(n) or n < lo or n > hi then
    bail('BADARG', name .. ' must be an integer in [' .. fmt(lo) .. ', ' .. fmt(hi) .. '], got ' .. tostring(v))
  end
  return n
end

-- How many whole groups of `size` values follow the first `fixed` ARGV values, within [lo, hi];
-- BADARG naming `what` ("id/token pairs after worker", ...) otherwise.
local function groups_arg(fixed, size, lo, hi, what)
  local rest = #ARGV - fixed
  local n = rest / size
  if n < lo or n > hi or n ~= math.floor(n) then
    bail('BADARG', 'expected ' .. lo .. '..' .. hi .. ' ' .. what .. ', got ' .. rest .. ' values')
  end
  return n
end

local function id_arg(v, name)
  if type(v) ~= 'string' or #v == 0 or #v > 128 or string.find(v, '[^%w%-_:%.]') then
    bail('BADARG', name .. ' must be 1-128 characters of [A-Za-z0-9-_:.], got ' .. tostring(v))
  end
  return v
end
