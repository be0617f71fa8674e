"""The bus's aiohttp application: ``/ws``, ``/healthz`` and ``/readyz``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from aiohttp import web
from redis.exceptions import RedisError

from filmstrip.catalog import Catalog, open_catalog
from filmstrip.errors import FilmstripError
from filmstrip.http_errors import error_response, json_errors_middleware
from filmstrip.protocols import ws
from filmstrip.redis_client import RedisClient, cluster_nodes, open_redis
from filmstrip.redis_layout import keep_upgrading
from filmstrip.services.bus.authorizer import Authorizer
from filmstrip.services.bus.client_sockets import ClientSockets
from filmstrip.services.bus.handler import SocketHandler
from filmstrip.services.bus.hub import Hub
from filmstrip.services.bus.metrics import bus_metrics
from filmstrip.services.bus.presence import Presence
from filmstrip.services.bus.replay import ReplayReader
from filmstrip.services.bus.revocation import TokenRechecker
from filmstrip.services.bus.subscriber import EventSubscriber
from filmstrip.settings import Settings
from filmstrip.supervised import mark
from filmstrip.tasks import cancel_and_wait

log = logging.getLogger("filmstrip.bus")

SETTINGS = web.AppKey("settings", Settings)
HUB = web.AppKey("hub", Hub)
HANDLER = web.AppKey("handler", SocketHandler)
REDIS: web.AppKey[RedisClient] = web.AppKey("redis")
CATALOG = web.AppKey("catalog", Catalog)
SUBSCRIBER = web.AppKey("subscriber", EventSubscriber)
PRESENCE = web.AppKey("presence", Presence)
RECHECKER = web.AppKey("rechecker", TokenRechecker)

# How long startup waits for the event subscription before serving anyway (readyz tells).
_SUBSCRIBE_WAIT_S = 5.0


async def _ws(request: web.Request) -> web.StreamResponse:
    if request.headers.get("Upgrade", "").strip().lower() != "websocket":
        # A browser tab or curl pointed at the bus: say what the URL is for.
        return error_response(
            400,
            "websocket_required",
            "GET /ws opens a WebSocket: send 'Connection: Upgrade' and 'Upgrade: websocket'",
        )
    return await request.app[HANDLER](request)


async def _healthz(request: web.Request) -> web.Response:
    return mark(web.json_response({"status": "ok"}))  # whose answer, for dev


async def _readyz(request: web.Request) -> web.Response:
    app = request.app
    # Each dependency by name only: the cause names addresses, for the log, not the caller.
    checks: dict[str, str] = {}
    try:
        await app[REDIS].ping()
        checks["redis"] = "ok"
    except (RedisError, OSError) as exc:
        log.warning("not ready: redis is down: %s", exc)
        checks["redis"] = "down"
    try:
        await app[CATALOG].ping()
        checks["catalog"] = "ok"
    except (FilmstripError, OSError) as exc:
        log.warning("not ready: catalog is down: %s", exc)
        checks["catalog"] = "down"
    checks["subscription"] = "ok" if app[SUBSCRIBER].connected else "down"
    ready = all(v == "ok" for v in checks.values())
    return web.json_response(
        {"status": "ready" if ready else "not ready", "checks": checks},
        status=200 if ready else 503,
    )


async def _resources(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    redis = await open_redis(settings)
    catalog = await open_catalog(settings)
    replay = ReplayReader(redis, maxlen=settings.bus.replay_maxlen, age_s=settings.bus.replay_age_s)
    hub = Hub(replay)
    subscriber = EventSubscriber(
        settings.redis.url, hub.publish, hub.subscribed, nodes=cluster_nodes(redis)
    )
    # A socket counts this long after its bus last refreshed it: three presence rounds.
    sockets = ClientSockets(
        redis,
        cap=settings.bus.max_sockets_per_client,
        ttl_s=3 * settings.bus.presence_interval_s,
    )
    presence = Presence(
        redis,
        hub,
        port=settings.bus.port,
        interval_s=settings.bus.presence_interval_s,
        sockets=sockets,
    )
    app[REDIS] = redis
    app[CATALOG] = catalog
    app[HUB] = hub
    app[SUBSCRIBER] = subscriber
    app[PRESENCE] = presence
    authorizer = Authorizer(catalog)
    app[HANDLER] = SocketHandler(settings, hub, authorizer, replay, sockets)
    app[RECHECKER] = TokenRechecker(hub, authorizer, interval_s=settings.bus.token_recheck_s)
    tasks = [
        asyncio.create_task(keep_upgrading(redis), name="bus-key-layout"),
        asyncio.create_task(subscriber.run(), name="bus-subscriber"),
        asyncio.create_task(presence.run(), name="bus-presence"),
        asyncio.create_task(app[RECHECKER].run(), name="bus-token-recheck"),
    ]
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(subscriber.ready.wait(), _SUBSCRIBE_WAIT_S)
    if not subscriber.connected:
        log.warning("serving before the event subscription is up")
    log.info("bus started", extra={"instance": presence.instance_id})
    try:
        yield
    finally:
        await cancel_and_wait(*tasks)
        await presence.withdraw()
        await catalog.close()
        await redis.aclose()
        log.info("bus stopped", extra={"instance": presence.instance_id})


async def _close_sockets(app: web.Application) -> None:
    # 1001 tells clients to reconnect (to another bus) and resume.
    await app[HUB].close_all(ws.CLOSE_GOING_AWAY, "server shutting down")


def create_app(settings: Settings) -> web.Application:
    """The bus application; Redis, the catalog and the subscription start with it."""
    # Every HTTP error in the api's JSON shape (a 405 keeps its Allow).
    app = web.Application(middlewares=[json_errors_middleware])
    app[SETTINGS] = settings
    app.cleanup_ctx.append(_resources)
    app.on_shutdown.append(_close_sockets)
    app.router.add_get("/ws", _ws)
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/readyz", _readyz)
    app.router.add_get("/metrics", bus_metrics(lambda: app.get(HUB)))
    return app
