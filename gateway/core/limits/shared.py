"""Counters in Redis, shared by every worker and instance: one script call per acquire.

A held counter is two keys: `gateway:limits:<counter>`, a sorted set of hold ids scored by their
deadline (ms, Redis time), and `...:amounts`, a hash of hold id -> amount plus `_total`. Expired
holds are purged by the next call that looks at the counter; idle keys expire by themselves.
A window counter is one hash, `gateway:limits:w:<counter>`: `s` its window's start (ms, Redis
time) and `n` its count; it expires when its window ends. Keys of one call are touched together,
so this needs one Redis (not a cluster).
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

from gateway.core.limits.claims import EPSILON, Claim, Hold, LimitReached

PREFIX = "gateway:limits:"

# KEYS: per claim two keys (a hold's holds and amounts; a window's hash, twice). ARGV: the hold id,
# epsilon, then per claim: amount, limit, base, ttl (ms), window (ms, 0 for a hold). Every claim is
# checked (the rules of claims.admits) before any is taken. Returns {0, level, reset ms, ...} per
# claim when all were taken, else {i, held, reset ms} for the first claim that does not fit.
ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local eps = tonumber(ARGV[2])
local function held(holds, amounts)
  local expired = redis.call('ZRANGEBYSCORE', holds, '-inf', now)
  if #expired > 0 then
    local gone = 0
    for _, old in ipairs(expired) do
      gone = gone + (tonumber(redis.call('HGET', amounts, old)) or 0)
      redis.call('HDEL', amounts, old)
    end
    redis.call('ZREMRANGEBYSCORE', holds, '-inf', now)
    if redis.call('ZCARD', holds) == 0 then
      redis.call('DEL', amounts)
      return 0
    end
    redis.call('HINCRBYFLOAT', amounts, '_total', tostring(-gone))
  end
  return tonumber(redis.call('HGET', amounts, '_total')) or 0
end
local function window(key, length)
  local v = redis.call('HMGET', key, 's', 'n')
  local start = tonumber(v[1])
  if start == nil or now - start >= length then
    return 0, length, nil
  end
  return tonumber(v[2]) or 0, start + length - now, start
end
local n = #KEYS / 2
local out = {0}
local starts = {}
for i = 1, n do
  local a = 3 + 5 * (i - 1)
  local amount, limit, base = tonumber(ARGV[a]), tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
  local length = tonumber(ARGV[a + 4])
  local h, reset, ok = 0, 0, false
  if length > 0 then
    h, reset, starts[i] = window(KEYS[2 * i - 1], length)
    ok = h < limit - eps and h + amount <= limit + eps
  else
    h = held(KEYS[2 * i - 1], KEYS[2 * i])
    ok = base + h + amount <= limit + eps or (h <= eps and base < limit)
  end
  if not ok then
    return {i, tostring(h), tostring(reset)}
  end
  out[#out + 1] = tostring(h + amount)
  out[#out + 1] = tostring(reset)
end
for i = 1, n do
  local a = 3 + 5 * (i - 1)
  local amount, ttl, length = ARGV[a], tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4])
  if length > 0 then
    if tonumber(amount) > 0 then
      local key = KEYS[2 * i - 1]
      if starts[i] == nil then
        redis.call('HSET', key, 's', now, 'n', amount)
        redis.call('PEXPIRE', key, length)
      else
        redis.call('HINCRBYFLOAT', key, 'n', amount)
      end
    end
  else
    local holds, amounts = KEYS[2 * i - 1], KEYS[2 * i]
    redis.call('ZADD', holds, now + ttl, ARGV[1])
    redis.call('HSET', amounts, ARGV[1], amount)
    redis.call('HINCRBYFLOAT', amounts, '_total', amount)
    if redis.call('PTTL', holds) < ttl then
      redis.call('PEXPIRE', holds, ttl)
      redis.call('PEXPIRE', amounts, ttl)
    end
  end
end
return out
"""

# What calls that ended give back, in one call. KEYS: the window hashes to add to, then per hold,
# per counter, its holds and its amounts. ARGV: the number of window hashes; per window hash, the
# amount and the window (ms); then per hold, its id and its number of counters. An amount starts a
# window where the last one ended; releasing a hold that expired or was released does nothing.
FINISH = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local adds = tonumber(ARGV[1])
for i = 1, adds do
  local amount, length = ARGV[2 * i], tonumber(ARGV[2 * i + 1])
  local start = tonumber(redis.call('HGET', KEYS[i], 's'))
  if start == nil or now - start >= length then
    redis.call('HSET', KEYS[i], 's', now, 'n', amount)
    redis.call('PEXPIRE', KEYS[i], length)
  else
    redis.call('HINCRBYFLOAT', KEYS[i], 'n', amount)
  end
end
local k = adds + 1
for a = 2 + 2 * adds, #ARGV, 2 do
  local id = ARGV[a]
  for _ = 1, tonumber(ARGV[a + 1]) do
    local holds, amounts = KEYS[k], KEYS[k + 1]
    k = k + 2
    local amount = redis.call('HGET', amounts, id)
    if amount then
      redis.call('HDEL', amounts, id)
      redis.call('ZREM', holds, id)
      if redis.call('ZCARD', holds) == 0 then
        redis.call('DEL', amounts)
      else
        redis.call('HINCRBYFLOAT', amounts, '_total', '-' .. amount)
      end
    end
  end
end
return 0
"""


def _keys(counter: str) -> tuple[str, str]:
    key = PREFIX + counter
    return key, key + ":amounts"


def _window_key(counter: str) -> str:
    return PREFIX + "w:" + counter


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


class SharedCounters:
    """The scripts, on the guard's client (which bounds every call and breaks on outages)."""

    def __init__(self, client: Any) -> None:
        self._acquire = client.register_script(ACQUIRE)
        self._finish = client.register_script(FINISH)

    async def acquire(self, hold_id: str, claims: Sequence[Claim]) -> LimitReached | tuple[list[float], list[float]]:
        """Each claim's level and seconds to its window's end when every claim was taken; else what
        refused (returned, not raised, so that the guard counts the call as answered)."""
        keys: list[str] = []
        args: list[str | int] = [hold_id, repr(EPSILON)]
        for claim in claims:
            if claim.window > 0:
                key = _window_key(claim.counter)
                keys += [key, key]
            else:
                keys.extend(_keys(claim.counter))
            args += [repr(claim.amount), repr(claim.limit), repr(claim.base), _ms(claim.ttl),
                     _ms(claim.window) if claim.window > 0 else 0]
        reply = await self._acquire(keys=keys, args=args)
        index = int(reply[0])
        if index:
            return LimitReached(claims[index - 1], float(reply[1]), float(reply[2]) / 1000)
        values = [float(v) for v in reply[1:]]
        return values[0::2], [v / 1000 for v in values[1::2]]

    async def finish(self, amounts: Iterable[tuple[str, float, float]], holds: Iterable[Hold]) -> None:
        """(counter, amount, window seconds): add each amount to its counter's current window; and
        release the holds."""
        keys: list[str] = []
        args: list[str | int] = [0]
        for counter, amount, window in amounts:
            keys.append(_window_key(counter))
            args += [repr(float(amount)), _ms(window)]
        args[0] = len(keys)
        for hold in holds:
            for counter in hold.counters:
                keys.extend(_keys(counter))
            args += [hold.id, len(hold.counters)]
        if len(args) > 1:
            await self._finish(keys=keys, args=args)
