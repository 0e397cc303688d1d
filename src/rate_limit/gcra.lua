-- GCRA, the algorithm of governor, on one client's bucket: atomic, and on Redis' own clock
-- (one clock for every replica). Loaded once with SCRIPT LOAD and called with EVALSHA by
-- bearer-guard's `RedisQuotas` (src/rate_limit/redis.rs). One key: cluster-safe.
--
-- KEYS[1]  the bucket: the client's theoretical arrival time (TAT), in microseconds since
--          the Unix epoch; absent while the bucket is full.
-- ARGV[1]  T: the emission interval in whole microseconds (> 0), one cell every T.
-- ARGV[2]  tau: the burst tolerance in microseconds, T * (burst - 1).
-- ARGV[3]  the most cells to take at once (>= 1).
-- ARGV[4]  how many cells must stay in the bucket for more than one to be taken.
-- ARGV[5]  empty; or a time in microseconds standing in for TIME (tests of the arithmetic).
--
-- Returns {cells taken, microseconds to wait}: {n >= 1, 0} admits the request (and lends
-- n - 1 more cells to the caller); {0, wait} refuses it, the next cell conforming after
-- `wait`. The key expires when the bucket would be full again: idle clients cost nothing.
local t = tonumber(ARGV[1])
local tau = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local keep = tonumber(ARGV[4])
local now = tonumber(ARGV[5])
if not now then
  -- Before Redis 5, a script that writes after TIME needs effects replication.
  if redis.replicate_commands then
    redis.replicate_commands()
  end
  local time = redis.call('TIME')
  now = tonumber(time[1]) * 1000000 + tonumber(time[2])
end

local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then
  tat = now
end
-- A cell conforms once now >= TAT - tau (governor: `t0 < earliest_time` refuses).
local earliest = tat - tau
if now < earliest then
  return {0, earliest - now}
end

local take = 1
if want > 1 then
  -- Cells conforming now, as governor's check_n would grant them: the largest n with
  -- earliest + (n - 1) * T <= now. Division in doubles may round up: corrected exactly.
  local available = 1 + math.floor((now - earliest) / t)
  while available > 1 and earliest + (available - 1) * t > now do
    available = available - 1
  end
  if available - keep > 1 then
    take = math.min(want, available - keep)
  end
end

tat = tat + take * t
-- '%d': Lua would print large numbers in exponent notation and lose digits.
redis.call('SET', KEYS[1], string.format('%d', tat),
  'PX', string.format('%d', math.ceil((tat - now) / 1000)))
return {take, 0}
