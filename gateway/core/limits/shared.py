"""Counters in Redis, shared by every worker and instance: one script call per acquire.

Each counter is two keys: `gateway:limits:<counter>`, a sorted set of hold ids scored by their
deadline (ms, Redis time), and `...:amounts`, a hash of hold id -> amount plus `_total`. Expired
holds are purged by the next call that looks at the counter; idle keys expire by themselves.
Keys of one call are touched together, so this needs one Redis (not a cluster).
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

from gateway.core.limits.claims import EPSILON, Claim, Hold, LimitReached

PREFIX = "gateway:limits:"

# KEYS: per claim, its holds and its amounts. ARGV: the hold id, then per claim: amount, limit,
# base, ttl (ms). Returns {0, "0"} when every claim was taken, else {i, held} for the first claim
# that does not fit (the same rule as claims.admits), having taken none.
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
local n = #KEYS / 2
for i = 1, n do
  local a = 3 + 4 * (i - 1)
  local amount, limit, base = tonumber(ARGV[a]), tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
  local h = held(KEYS[2 * i - 1], KEYS[2 * i])
  if not (base + h + amount <= limit + eps or (h <= eps and base < limit)) then
    return {i, tostring(h)}
  end
end
for i = 1, n do
  local a = 3 + 4 * (i - 1)
  local holds, amounts, ttl = KEYS[2 * i - 1], KEYS[2 * i], tonumber(ARGV[a + 3])
  redis.call('ZADD', holds, now + ttl, ARGV[1])
  redis.call('HSET', amounts, ARGV[1], ARGV[a])
  redis.call('HINCRBYFLOAT', amounts, '_total', ARGV[a])
  if redis.call('PTTL', holds) < ttl then
    redis.call('PEXPIRE', holds, ttl)
    redis.call('PEXPIRE', amounts, ttl)
  end
end
return {0, '0'}
"""

# KEYS: per hold, per counter, its holds and its amounts. ARGV: per hold, its id and its number of
# counters. Releasing a hold that expired or was released already does nothing.
RELEASE = """
local k = 1
for a = 1, #ARGV, 2 do
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


class SharedCounters:
    """The two scripts, on the guard's client (which bounds every call and breaks on outages)."""

    def __init__(self, client: Any) -> None:
        self._acquire = client.register_script(ACQUIRE)
        self._release = client.register_script(RELEASE)

    async def acquire(self, hold_id: str, claims: Sequence[Claim]) -> LimitReached | None:
        """None when every claim was taken; else what refused (returned, not raised, so that the
        guard counts the call as answered)."""
        keys: list[str] = []
        args: list[str | int] = [hold_id, repr(EPSILON)]
        for claim in claims:
            keys.extend(_keys(claim.counter))
            args += [repr(claim.amount), repr(claim.limit), repr(claim.base), max(1, int(claim.ttl * 1000))]
        index, held = await self._acquire(keys=keys, args=args)
        return LimitReached(claims[int(index) - 1], float(held)) if int(index) else None

    async def release(self, holds: Iterable[Hold]) -> None:
        keys: list[str] = []
        args: list[str | int] = []
        for hold in holds:
            for counter in hold.counters:
                keys.extend(_keys(counter))
            args += [hold.id, len(hold.counters)]
        if args:
            await self._release(keys=keys, args=args)
