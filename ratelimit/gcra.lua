-- The fleet's rate limiter state: one hash, KEYS[1], with fields
--   tat    GCRA theoretical arrival time: the earliest start of the next slot
--   pause  the fleet sends nothing before this time (set after a 429)
-- Times are microseconds on the Redis server's clock (TIME), so every replica
-- reads one clock. Stored as decimal strings with 3 decimals (sub-µs slots).
--
-- ARGV[1] is the mode:
--   "reserve"  ARGV[2] = slot interval (µs), ARGV[3] = tolerance (µs).
--              Takes the next slot:
--                start = max(tat, now - tolerance, pause); tat = start + interval
--              A start in the past (by at most the tolerance) lets a replica
--              that fell a little behind catch up instead of losing the slot.
--   "confirm"  ARGV[2], ARGV[3] as for reserve, ARGV[4] = start of the slot
--              held, ARGV[5] = "1" to accept it however late, ARGV[6] = "1"
--              to reserve the next slot too (for the next holder).
--              The slot stands unless a pause covers it or it started more
--              than the tolerance ago; else takes a new slot, as reserve.
--   "pause"    ARGV[2] = pause duration (µs). pause = max(pause, now + d).
--   "peek"     read only.
-- Every mode returns {now, pause, x, renewed, next} as strings: x is the
-- start of the slot (reserve, confirm) or tat; renewed is "1" when confirm
-- took a new slot, else "0"; next is the start of the next slot, or "".

-- Redis < 5 needs this before writing after a non-deterministic command
-- (TIME); Redis 7 and miniredis ignore it.
if redis.replicate_commands then
  redis.replicate_commands()
end

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local v = redis.call('HMGET', KEYS[1], 'tat', 'pause')
local tat = tonumber(v[1]) or 0
local pause = tonumber(v[2]) or 0
local mode = ARGV[1]

local function f(x)
  return string.format('%.3f', x)
end

-- The state matters only until both times have passed: let the key expire a
-- minute after that, so an idle fleet leaves nothing behind.
local function store(field, value)
  redis.call('HSET', KEYS[1], field, f(value))
  local last = math.max(tat, pause)
  redis.call('PEXPIRE', KEYS[1], string.format('%.0f', math.ceil((last - now) / 1000) + 60000))
end

-- reserve takes the next slot and returns its start.
local function reserve()
  local start = math.max(tat, now - tonumber(ARGV[3]), pause)
  tat = start + tonumber(ARGV[2])
  store('tat', tat)
  return start
end

if mode == 'reserve' then
  return {f(now), f(pause), f(reserve()), '0', ''}
elseif mode == 'confirm' then
  local start = tonumber(ARGV[4])
  local late = now - start > tonumber(ARGV[3]) and ARGV[5] ~= '1'
  if pause > math.max(now, start) or late then
    return {f(now), f(pause), f(reserve()), '1', ''}
  end
  local next = ''
  if ARGV[6] == '1' then
    next = f(reserve())
  end
  return {f(now), f(pause), f(start), '0', next}
elseif mode == 'pause' then
  local d = tonumber(ARGV[2])
  if now + d > pause then
    pause = now + d
    store('pause', pause)
  end
  return {f(now), f(pause), f(tat), '0', ''}
elseif mode == 'peek' then
  return {f(now), f(pause), f(tat), '0', ''}
end
return redis.error_reply('ratelimit: unknown mode ' .. tostring(mode))
