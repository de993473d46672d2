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
--   [7] reserve, confirm: the start of the latest slot the caller was
--       handed (µs), "" when none
--   [8] confirm: the epoch of the slot held (below)
-- Modes, with their own ARGV from [9]:
--   "reserve"  Takes the next slot:
--                start = max(tat, now - tolerance, pause); tat = start + interval
--              A start in the past (by at most the tolerance) lets a replica
--              that fell a little behind catch up instead of losing the slot.
--   "confirm"  [9] = start of the slot held, [10] = "1" to accept it however
--              late, [11] = "1" to reserve the next slot too (for the next
--              holder), [12] = how late (µs) the slot may be confirmed
--              (the tolerance when absent). The slot stands unless a pause
--              covers it, it started more than that ago, or it was handed
--              out in another epoch; else takes a new slot, as reserve.
--   "pause"    [9] = pause duration (µs). pause = max(pause, now + d).
--   "peek"     read only.
-- Every mode returns {now, pause, x, renewed, next, interval, epoch} as
-- strings: x is the start of the slot (reserve, confirm) or tat; renewed is
-- "1" when confirm took a new slot, else "0"; next is the start of the next
-- slot, or ""; interval is the fleet's slot interval (µs) the mode used;
-- epoch is the state's (reserve, confirm), else "".
--
-- A state that lost writes: a failover to a replica that lagged, or that
-- never had the key, leaves tat behind slots already handed out, which it
-- could hand out again while their holders still use them (a burst of up
-- to one slot per replica). The hash holds ep, the state's epoch: the time
-- it began. A caller says the latest slot it was handed ([7]); a tat short
-- of one interval past it means the state is behind: a new epoch begins,
-- tat moves past that slot, and every slot held from the old epoch is void
-- at its confirm (its holder takes a new one), so slots handed out before
-- cannot be used alongside the new ones.
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

local v = redis.call('HMGET', KEYS[1], 'tat', 'pause', 'iv', 'ivat', 'ep')
local tat = finite(v[1]) or 0
local pause = finite(v[2]) or 0

-- The fleet's interval: a longer one asserted by another replica within
-- ivHold (and not from the future, nor longer than a minute) binds this
-- one; else this replica's own is asserted with the next write.
local ivHold, ivMax = 2000000, 60000000
local fleetIv, ivAt = finite(v[3]), finite(v[4])
local assertIv, ownInterval = true, interval
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

-- The epoch, for reserve and confirm: a new one when the state is behind
-- the caller's latest slot (within the key's life: a minute), or has none.
local ep, newEp = v[5], false
if mode == 'reserve' or mode == 'confirm' then
  local seen = finite(ARGV[7])
  if seen and seen > now - 60000000 and tat < seen + ownInterval - 1 then
    tat, ep = math.max(tat, seen + ownInterval), false
  end
  if not ep then
    ep, newEp = f(now), true
  end
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
  if newEp then
    kv[#kv + 1], kv[#kv + 2] = 'ep', ep
    newEp = false
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
  return {f(now), f(pause), f(reserve()), '0', '', f(interval), ep}
elseif mode == 'confirm' then
  local start = tonumber(ARGV[9])
  local late = now - start > (tonumber(ARGV[12]) or tolerance) and ARGV[10] ~= '1'
  if pause > math.max(now, start) or late or ARGV[8] ~= ep then
    return {f(now), f(pause), f(reserve()), '1', '', f(interval), ep}
  end
  local next = ''
  if ARGV[11] == '1' then
    next = f(reserve())
  end
  return {f(now), f(pause), f(start), '0', next, f(interval), ep}
elseif mode == 'pause' then
  local d = math.min(tonumber(ARGV[9]), pauseLimit)
  if now + d > pause then
    pause = now + d
    store('pause')
  end
  return {f(now), f(pause), f(tat), '0', '', f(interval), ''}
elseif mode == 'peek' then
  return {f(now), f(pause), f(tat), '0', '', f(interval), ''}
end
return redis.error_reply('ratelimit: unknown mode ' .. tostring(mode))
