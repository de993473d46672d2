-- The fleet's rate limiter state: one hash, KEYS[1], with fields
--   tat    GCRA theoretical arrival time: the earliest start of the next slot
--   pause  the fleet sends nothing before this time (set after a 429)
-- Times are microseconds on the Redis server's clock (TIME), so every replica
-- reads one clock. Stored as decimal strings with 3 decimals (sub-µs slots).
--
-- ARGV of every mode:
--   [1] mode (below)
--   [2] now (µs) to use instead of TIME: tests only; "" reads TIME
--   [3] slot interval (µs)
--   [4] tolerance (µs): how late a slot may still be taken
--   [5] pause limit (µs): the longest pause capcheck sets, plus slack
--   [6] lead limit (µs): how far past max(now, pause) tat may be
-- Modes, with their own ARGV from [7]:
--   "reserve"  Takes the next slot:
--                start = max(tat, now - tolerance, pause); tat = start + interval
--              A start in the past (by at most the tolerance) lets a replica
--              that fell a little behind catch up instead of losing the slot.
--   "confirm"  [7] = start of the slot held, [8] = "1" to accept it however
--              late, [9] = "1" to reserve the next slot too (for the next
--              holder), [10] = how late (µs) the slot may be confirmed
--              (the tolerance when absent). The slot stands unless a pause
--              covers it or it started more than that ago; else takes a new
--              slot, as reserve.
--   "pause"    [7] = pause duration (µs). pause = max(pause, now + d).
--   "peek"     read only.
-- Every mode returns {now, pause, x, renewed, next, interval} as strings: x
-- is the start of the slot (reserve, confirm) or tat; renewed is "1" when
-- confirm took a new slot, else "0"; next is the start of the next slot, or
-- ""; interval is the fleet's slot interval (µs) the mode used.
--
-- Replicas started with different rates: the hash also holds iv, the
-- longest slot interval (the lowest rate) of the replicas that took a slot
-- in the last ivHold µs, and ivat, when it was last asserted. Slots are
-- spaced by it, so the fleet sends at the lowest rate among its replicas
-- that are sending, and a replica whose own interval is shorter learns it
-- from the answer (and warns).
--
-- The hash is shared by the fleet, so what it holds is clamped before use: a
-- stray write, or a failover to a Redis whose clock is far behind, must not
-- stop the fleet for long, nor switch the limit off (see doc.go, "A state
-- that cannot be trusted").

-- Redis < 5 needs this before writing after a non-deterministic command
-- (TIME); Redis 7 and miniredis ignore it.
if redis.replicate_commands then
  redis.replicate_commands()
end

local now = tonumber(ARGV[2])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local interval, tolerance = tonumber(ARGV[3]), tonumber(ARGV[4])
local pauseLimit, leadLimit = tonumber(ARGV[5]), tonumber(ARGV[6])
local mode = ARGV[1]

-- A time read from the hash: nil when absent, not a number, or not finite.
local function finite(s)
  local x = tonumber(s)
  if x == nil or x ~= x or x == math.huge or x == -math.huge then
    return nil
  end
  return x
end

local v = redis.call('HMGET', KEYS[1], 'tat', 'pause', 'iv', 'ivat')
local tat = finite(v[1]) or 0
local pause = finite(v[2]) or 0

-- The fleet's interval: a longer one asserted by another replica within
-- ivHold (and not from the future, nor longer than a minute) binds this
-- one; else this replica's own is asserted with the next write.
local ivHold, ivMax = 2000000, 60000000
local fleetIv, ivAt = finite(v[3]), finite(v[4])
local assertIv = true
if fleetIv and ivAt and fleetIv > interval and fleetIv <= ivMax and ivAt <= now and now - ivAt <= ivHold then
  interval, assertIv = fleetIv, false
end
-- repaired: the hash held something out of bounds; the next write fixes it
-- for good, so a clamp does not move on with the clock.
local repaired = (v[1] and not finite(v[1])) or (v[2] and not finite(v[2]))
if pause > now + pauseLimit then
  pause, repaired = now + pauseLimit, true
end
if tat > math.max(now, pause) + leadLimit then
  tat, repaired = math.max(now, pause) + leadLimit, true
end

local function f(x)
  return string.format('%.3f', x)
end

-- The state matters only until both times have passed: let the key expire a
-- minute after that, so an idle fleet leaves nothing behind.
local function store(field)
  local kv = {}
  if repaired or field == 'tat' then
    kv[#kv + 1], kv[#kv + 2] = 'tat', f(tat)
  end
  if repaired or field == 'pause' then
    kv[#kv + 1], kv[#kv + 2] = 'pause', f(pause)
  end
  if field == 'tat' and assertIv then
    kv[#kv + 1], kv[#kv + 2] = 'iv', f(interval)
    kv[#kv + 1], kv[#kv + 2] = 'ivat', f(now)
  end
  repaired = false
  redis.call('HSET', KEYS[1], unpack(kv))
  local last = math.max(tat, pause)
  redis.call('PEXPIRE', KEYS[1], string.format('%.0f', math.ceil((last - now) / 1000) + 60000))
end

-- reserve takes the next slot and returns its start.
local function reserve()
  local start = math.max(tat, now - tolerance, pause)
  tat = start + interval
  store('tat')
  return start
end

if mode == 'reserve' then
  return {f(now), f(pause), f(reserve()), '0', '', f(interval)}
elseif mode == 'confirm' then
  local start = tonumber(ARGV[7])
  local late = now - start > (tonumber(ARGV[10]) or tolerance) and ARGV[8] ~= '1'
  if pause > math.max(now, start) or late then
    return {f(now), f(pause), f(reserve()), '1', '', f(interval)}
  end
  local next = ''
  if ARGV[9] == '1' then
    next = f(reserve())
  end
  return {f(now), f(pause), f(start), '0', next, f(interval)}
elseif mode == 'pause' then
  local d = math.min(tonumber(ARGV[7]), pauseLimit)
  if now + d > pause then
    pause = now + d
    store('pause')
  end
  return {f(now), f(pause), f(tat), '0', '', f(interval)}
elseif mode == 'peek' then
  return {f(now), f(pause), f(tat), '0', '', f(interval)}
end
return redis.error_reply('ratelimit: unknown mode ' .. tostring(mode))
