"""Which supervisor started this process. ``filmstrip dev`` passes its roles a random
identity; their health answers carry it back, so that dev counts an answer from its own
role only, never one from another instance that holds the port."""

from __future__ import annotations

import functools
import os
from typing import TypeVar

from aiohttp import web

IDENTITY_ENV = "FILMSTRIP_SUPERVISOR_ID"
IDENTITY_HEADER = "Filmstrip-Supervisor-Id"

R = TypeVar("R", bound=web.StreamResponse)


@functools.cache
def identity() -> str:
    """The identity this process was given ("" when it was started by hand)."""
    return os.environ.get(IDENTITY_ENV, "")


def mark(response: R) -> R:
    """``response`` carrying this process's identity, if it was given one."""
    if identity():
        response.headers[IDENTITY_HEADER] = identity()
    return response
