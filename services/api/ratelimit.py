"""Request rate limits: a token bucket per client and per IP, kept in Redis.

The buckets live in Redis, not in the process, because several api processes serve the
same clients: an in-process bucket would multiply the limit by the number of processes.
The refill uses Redis's own clock (``TIME`` inside the script), so processes with skewed
clocks still share one consistent bucket.

Two middlewares, because who is asking is known only after authentication:

- :func:`ip_rate_middleware` (before auth) charges the caller's IP for requests that carry
  no token and for those whose token was refused, so token guessing is limited too; an IP
  that has spent its bucket is refused before its token is even looked up (from a
  process-local note of the refusal, so requests with a token cost one Redis call, not two).
- :func:`client_rate_middleware` (after auth) charges the authenticated client.

If Redis is unreachable both fail open (and log, at most every few seconds): an outage must
not turn every request into a 429; the routes that need Redis answer 503 on their own. A
process out of Redis connections (its pool stayed dry for ``redis_pool_wait_s``) is not an
outage but overload, and must not lift the limit: that ``MaxConnectionsError`` propagates
and the request is refused with ``503 server_busy``.
"""

from __future__ import annotations

import logging
import math
import time

from aiohttp import web
from redis.commands.core import AsyncScript
from redis.exceptions import MaxConnectionsError, RedisError

from filmstrip import keys
from filmstrip.redis_client import RedisClient
from filmstrip.services.api.edge import Handler, credentials_of, route_template
from filmstrip.services.api.errors import ApiError
from filmstrip.services.api.middleware import CLIENT
from filmstrip.services.api.state import STATE

log = logging.getLogger("filmstrip.api.ratelimit")

# Probes must never be refused: a load balancer would take the process out of service.
_EXEMPT = frozenset({"/healthz", "/readyz", "/metrics"})

# KEYS[1] bucket; ARGV rate per s, burst. Takes one token if there is one.
# Returns {allowed (0/1), ms until one token is available}.
_TAKE = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1])
local at = tonumber(state[2])
if tokens == nil or at == nil then
  tokens = burst
  at = now
end
tokens = math.min(burst, tokens + math.max(0, now - at) * rate / 1000)
if tokens < 1 then
  return {0, math.ceil((1 - tokens) * 1000 / rate)}
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens - 1), 'at', tostring(now))
-- A full bucket is the same as none: let idle subjects' keys expire.
redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + 1000)
return {1, 0}
"""

_OUTAGE_LOG_EVERY_S = 10.0
# Process-local notes of refused subjects; past this many, expired notes are dropped.
_MAX_NOTES = 10_000


class RateLimiter:
    """Token buckets in Redis; :meth:`take` answers how long to wait (0 = go ahead)."""

    def __init__(self, redis: RedisClient, *, rate_per_s: float, burst: int) -> None:
        self._script: AsyncScript = redis.register_script(_TAKE)
        self._rate = rate_per_s
        self._burst = burst
        self._last_outage_log = -math.inf
        self._refused_until: dict[str, float] = {}

    async def take(self, subject: str) -> float:
        """Spend one token of ``subject``'s bucket; seconds to wait if it is empty. Fails open
        (0) when Redis is unreachable; ``MaxConnectionsError`` when this process is out of them."""
        try:
            allowed, wait_ms = await self._script(
                keys=[keys.api_rate(subject)], args=[self._rate, self._burst]
            )
        except MaxConnectionsError:
            raise
        except (RedisError, OSError) as exc:
            now = time.monotonic()
            if now - self._last_outage_log >= _OUTAGE_LOG_EVERY_S:
                self._last_outage_log = now
                log.warning("rate limiter unavailable, not limiting: %s", exc)
            return 0.0
        if int(allowed):
            return 0.0
        wait = int(wait_ms) / 1000
        self._note_refusal(subject, wait)
        return wait

    def refused_for(self, subject: str) -> float:
        """Seconds this process last told ``subject`` to wait that are still to run."""
        left = self._refused_until.get(subject, -math.inf) - time.monotonic()
        if left > 0:
            return left
        self._refused_until.pop(subject, None)  # run out: forget it
        return 0.0

    def _note_refusal(self, subject: str, wait: float) -> None:
        now = time.monotonic()
        if len(self._refused_until) >= _MAX_NOTES:
            self._refused_until = {s: t for s, t in self._refused_until.items() if t > now}
            if len(self._refused_until) >= _MAX_NOTES:
                # Redis still limits; only the shortcut for token requests is lost.
                self._refused_until.clear()
        self._refused_until[subject] = now + wait


LIMITER: web.AppKey[RateLimiter] = web.AppKey("filmstrip_rate_limiter", RateLimiter)


async def start_limiter(app: web.Application) -> None:
    """``on_startup`` hook: the limiter over the api's Redis (after its resources start)."""
    state = app[STATE]
    app[LIMITER] = RateLimiter(
        state.redis, rate_per_s=state.settings.api.rate_per_s, burst=state.settings.api.rate_burst
    )


def _refuse(wait_s: float, who: str) -> ApiError:
    retry = max(1, math.ceil(wait_s))
    return ApiError(
        429,
        "rate_limited",
        f"too many requests from this {who}; retry in {retry} s",
        headers={"Retry-After": str(retry)},
    )


def _ip_subject(request: web.Request) -> str:
    # The socket's peer, never X-Forwarded-For: a client could forge that header to get a
    # fresh bucket on every request. Behind a proxy, limit there (or per client here).
    return f"ip:{request.remote or 'unknown'}"


@web.middleware
async def ip_rate_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """429 for an IP over its rate on unauthenticated requests or refused tokens."""
    if route_template(request) in _EXEMPT:
        return await handler(request)
    limiter = request.app[LIMITER]
    subject = _ip_subject(request)
    if credentials_of(request) is None:
        wait = await limiter.take(subject)
        if wait:
            raise _refuse(wait, "address")
        return await handler(request)
    # A token is checked by the auth middleware; only refused ones cost the IP a token,
    # so clients behind one NAT are limited per client, not together.
    wait = limiter.refused_for(subject)
    if wait:
        raise _refuse(wait, "address")
    try:
        return await handler(request)
    except ApiError as exc:
        if exc.status == 401:
            wait = await limiter.take(subject)
            if wait:
                # The guess that spent the bucket already learns it is over the limit.
                raise _refuse(wait, "address") from None
        raise


@web.middleware
async def client_rate_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """429 for an authenticated client over its rate (after the auth middleware)."""
    client = request.get(CLIENT)
    if client is not None:
        wait = await request.app[LIMITER].take(f"client:{client.id}")
        if wait:
            raise _refuse(wait, "client")
    return await handler(request)
