"""The server-side scripts of the fleet's store: each decision is one atomic script, so engines
racing for the same key cannot both win. Times are the server's (`TIME`), so the engines'
clocks never need to agree.
"""

from __future__ import annotations

# GCRA over several keys at once (`actions.ratelimit.RateLimiter.reserve`, server-side).
# KEYS: one per slot. ARGV[1]: max wait in us (-1: none); then per slot its interval (us) and
# burst. Returns {granted (1/0), wait in us}. A key's value is its theoretical arrival time. An
# interval of 0 is a key without a configured rate: it is only read (it may hold a pause).
GCRA_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local max_wait = tonumber(ARGV[1])
local start = now
local tats = {}
for i, key in ipairs(KEYS) do
  local interval = tonumber(ARGV[2 * i])
  local burst = tonumber(ARGV[2 * i + 1])
  local tat = tonumber(redis.call('GET', key) or now)
  if tat < now then tat = now end
  tats[i] = tat
  local allowed = tat - (burst - 1) * interval
  if allowed > start then start = allowed end
end
local wait = start - now
if max_wait >= 0 and wait > max_wait then return {0, wait} end
for i, key in ipairs(KEYS) do
  local interval = tonumber(ARGV[2 * i])
  if interval > 0 then
    local tat = tats[i]
    if start > tat then tat = start end
    tat = tat + interval
    redis.call('SET', key, string.format('%d', tat), 'PX', math.floor((tat - now) / 1000) + 1000)
  end
end
return {1, wait}
"""

# A provider's 429 (`actions.ratelimit.RateLimiter.pause`): no slot of these keys starts within
# ARGV[1] us. KEYS as GCRA_RESERVE's; then per key its interval (us) and burst. The next start
# a key allows is `tat - (burst - 1) * interval`, so its tat moves to at least now + pause + that.
GCRA_PAUSE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local pause = tonumber(ARGV[1])
for i, key in ipairs(KEYS) do
  local interval = tonumber(ARGV[2 * i])
  local burst = tonumber(ARGV[2 * i + 1])
  local tat = now + pause + (burst - 1) * interval
  local old = tonumber(redis.call('GET', key) or now)
  if tat > old then
    redis.call('SET', key, string.format('%d', tat), 'PX', math.floor((tat - now) / 1000) + 1000)
  end
end
return 1
"""

# Circuit states as the scripts return them.
CLOSED, OPEN, HALF_OPEN = 0, 1, 2

# Before a call. KEYS: the circuit (hash: failures, opened), its probe marker. ARGV[1]: open
# period in ms. Returns {state, ms until an open circuit lets a probe through, probe (1/0),
# failures counted (while closed)}.
CIRCUIT_ADMIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local opened = redis.call('HGET', KEYS[1], 'opened')
if not opened then
  return {0, 0, 0, tonumber(redis.call('HGET', KEYS[1], 'failures') or 0)}
end
local reopens = tonumber(opened) + tonumber(ARGV[1]) - now
if reopens > 0 then return {1, reopens, 0} end
if redis.call('SET', KEYS[2], '1', 'NX', 'PX', ARGV[1]) then return {2, 0, 1} end
return {2, 0, 0}
"""

# After a call. KEYS as above. ARGV: failed (1, 0, or -1 for "no verdict"), probe (1/0),
# threshold, open period (ms), expiry of the circuit's record (ms). Returns {state, ms until
# it may be probed, changed (1/0)}. An answer closes it; a failure counts, opening it at the
# threshold, or again at once when it failed after its open period (the probe).
CIRCUIT_RECORD = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local failed = tonumber(ARGV[1])
local open_ms = tonumber(ARGV[4])
if ARGV[2] == '1' then redis.call('DEL', KEYS[2]) end
local opened = redis.call('HGET', KEYS[1], 'opened')
if failed == 0 then
  redis.call('DEL', KEYS[1])
  if opened then return {0, 0, 1} end
  return {0, 0, 0}
end
if failed < 0 then
  if not opened then return {0, 0, 0} end
  local left = tonumber(opened) + open_ms - now
  if left > 0 then return {1, left, 0} end
  return {2, 0, 0}
end
local failures = redis.call('HINCRBY', KEYS[1], 'failures', 1)
redis.call('PEXPIRE', KEYS[1], ARGV[5])
if opened then
  local left = tonumber(opened) + open_ms - now
  if left > 0 then return {1, left, 0} end
  redis.call('HSET', KEYS[1], 'opened', now)
  return {1, open_ms, 1}
end
if failures >= tonumber(ARGV[3]) then
  redis.call('HSET', KEYS[1], 'opened', now)
  return {1, open_ms, 1}
end
return {0, 0, 0}
"""

# Idempotency. A record is 'p' .. owner while a request runs (a lease), 's' .. data once it
# succeeded. KEYS[1]: the record. ARGV: owner, lease (ms). Returns {1} (run it: the claim is
# the caller's), {0, data} (it succeeded already), or {0} (another caller runs it now).
CLAIM = """
local value = redis.call('GET', KEYS[1])
if not value then
  redis.call('SET', KEYS[1], 'p' .. ARGV[1], 'PX', ARGV[2])
  return {1}
end
if string.sub(value, 1, 1) == 's' then return {0, string.sub(value, 2)} end
if value == 'p' .. ARGV[1] then return {1} end
return {0}
"""

# A failed request gives its claim back, unless it is no longer its own.
RELEASE = """
if redis.call('GET', KEYS[1]) == 'p' .. ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
