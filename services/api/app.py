"""The api application: routes, middlewares and the resources it holds."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from aiohttp import web

from filmstrip.auth.signing import load_signing_secret
from filmstrip.blobs import open_blob_store
from filmstrip.catalog import open_catalog
from filmstrip.events import EventPublisher
from filmstrip.photos import PhotoLifecycle
from filmstrip.protocols import openapi
from filmstrip.queue import JobQueue, QueueOptions
from filmstrip.redis_client import open_redis
from filmstrip.redis_layout import keep_upgrading
from filmstrip.services.api import (
    checks,
    deletion,
    docs,
    health,
    listing,
    photos,
    queues,
    retries,
    sessions,
    uploads,
)
from filmstrip.services.api import web as web_pages
from filmstrip.services.api.cors import add_cors_headers, cors_middleware
from filmstrip.services.api.edge import edge_middleware
from filmstrip.services.api.json import json_response
from filmstrip.services.api.metrics import metrics_middleware
from filmstrip.services.api.middleware import auth_middleware, error_middleware, trace_middleware
from filmstrip.services.api.ratelimit import (
    client_rate_middleware,
    ip_rate_middleware,
    start_limiter,
)
from filmstrip.services.api.reconciler import run_reconciler
from filmstrip.services.api.relay import run_relay
from filmstrip.services.api.state import STATE, ApiState
from filmstrip.services.api.tus import setup_tus
from filmstrip.settings import Settings
from filmstrip.tasks import cancel_and_wait


async def openapi_document(request: web.Request) -> web.StreamResponse:
    """``GET /v1/openapi.json``: the contract this server implements."""
    return json_response(openapi.document())


def create_app(settings: Settings, *, background: bool = True) -> web.Application:
    """The api app; ``background=False`` skips the relay loop (for focused tests)."""
    app = web.Application(
        middlewares=[
            trace_middleware,
            metrics_middleware,
            cors_middleware,
            error_middleware,
            edge_middleware,
            ip_rate_middleware,
            auth_middleware,
            client_rate_middleware,
        ],
        # Uploads are streamed from multipart parts; this only bounds bodies read whole.
        client_max_size=1024 * 1024,
    )
    app.router.add_get("/healthz", health.healthz)
    app.router.add_get("/v1/openapi.json", openapi_document)
    app.router.add_get("/readyz", health.readyz)
    app.router.add_post("/v1/photos", uploads.upload_photo, expect_handler=uploads.expect_upload)
    app.router.add_get("/v1/photos/{photo_id}", photos.get_photo)
    app.router.add_get("/v1/photos/{photo_id}/original", photos.get_original)
    app.router.add_get("/v1/photos/{photo_id}/derivatives/{name}", photos.get_derivative)

    # --- client features: listing, deletion, duplicate checks, retries, sessions, queue admin
    app.router.add_get("/v1/photos", listing.list_photos)
    app.router.add_post("/v1/photos/check", checks.check_hashes)
    app.router.add_delete("/v1/photos/{photo_id}", deletion.delete_photo)
    app.router.add_post("/v1/photos/{photo_id}/retry", retries.retry_photo)
    app.router.add_post("/v1/sessions", sessions.create_session)
    app.router.add_get("/v1/sessions/{session_id}", sessions.get_session)
    q = queues.QUEUE_PATH
    app.router.add_get(q, queues.queue_overview)
    app.router.add_get(f"{q}/jobs", queues.list_jobs)
    app.router.add_get(f"{q}/jobs/{{job_id}}", queues.get_job)
    app.router.add_post(f"{q}/jobs/{{job_id}}/retry", queues.retry_job)
    app.router.add_delete(f"{q}/jobs/{{job_id}}", queues.remove_job)
    app.router.add_post(f"{q}/pause", queues.pause)
    app.router.add_post(f"{q}/resume", queues.resume)
    web_pages.add_routes(app)  # gallery, dashboard, /metrics, /v1/config (web area)
    docs.add_routes(app)  # /docs: Swagger UI over /v1/openapi.json

    async def resources(app: web.Application) -> AsyncIterator[None]:
        redis = await open_redis(settings, command_timeout_s=5)
        catalog = await open_catalog(settings)
        blobs = await open_blob_store(settings)
        queue = JobQueue(redis, QueueOptions.from_settings(settings))
        events = EventPublisher.from_settings(redis, settings)
        secret = await load_signing_secret(
            settings.api.signing_secret, catalog, settings.files.data_dir
        )
        state = ApiState(
            settings=settings,
            redis=redis,
            catalog=catalog,
            blobs=blobs,
            queue=queue,
            events=events,
            photos=PhotoLifecycle(settings, catalog, queue, events, signing_secret=secret),
            signing_secret=secret,
        )
        app[STATE] = state
        tasks: list[asyncio.Task[None]] = []
        if background:
            tasks.append(asyncio.create_task(keep_upgrading(redis)))
            tasks.append(asyncio.create_task(run_relay(state.photos)))
            tasks.append(asyncio.create_task(run_reconciler(state.photos, redis, blobs)))
        yield
        await cancel_and_wait(*tasks)
        await state.photos.close()
        await blobs.close()
        await catalog.close()
        await redis.aclose()

    app.cleanup_ctx.append(resources)
    setup_tus(app, background=background)
    app.on_startup.append(start_limiter)
    app.on_response_prepare.append(add_cors_headers)
    return app
