"""What the api process holds for its lifetime, typed, on the aiohttp app."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web

from filmstrip.auth.token_use import TokenUse
from filmstrip.blobs import BlobStore
from filmstrip.catalog import Catalog
from filmstrip.events import EventPublisher
from filmstrip.photos import PhotoLifecycle
from filmstrip.queue import JobQueue
from filmstrip.redis_client import RedisClient
from filmstrip.services.api.backlog import BacklogReader
from filmstrip.settings import Settings


@dataclass
class ApiState:
    settings: Settings
    redis: RedisClient
    catalog: Catalog
    blobs: BlobStore
    queue: JobQueue
    events: EventPublisher
    photos: PhotoLifecycle
    signing_secret: bytes
    token_use: TokenUse = field(default_factory=TokenUse)
    backlog: BacklogReader = field(default_factory=BacklogReader)


STATE: web.AppKey[ApiState] = web.AppKey("filmstrip_api_state", ApiState)


def state_of(request: web.Request) -> ApiState:
    """The api's state from a request."""
    return request.app[STATE]
