"""A private redis-server the tests own, so they can kill and restart it."""

from __future__ import annotations

import os
import shutil
import tempfile

from filmstrip.embedded.redis_server import RedisServer as _EmbeddedRedis
from filmstrip.embedded.redis_server import free_port, redis_server_binary

__all__ = ["RedisServer", "env_without_filmstrip", "free_port", "redis_server_binary"]


class RedisServer(_EmbeddedRedis):
    """The embedded server in a temp dir that ``cleanup`` removes."""

    def __init__(self, *, appendonly: bool = True, port: int | None = None) -> None:
        super().__init__(
            tempfile.mkdtemp(prefix="filmstrip-redis-"), port=port, appendonly=appendonly
        )

    def cleanup(self) -> None:
        self.stop(kill=True)
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()


def env_without_filmstrip() -> dict[str, str]:
    """The process environment minus any settings the developer may have set (FILMSTRIP_*
    and the PaaS conventions it honours)."""
    paas = ("PORT", "DATABASE_URL", "REDIS_URL")
    return {k: v for k, v in os.environ.items() if not k.startswith("FILMSTRIP_") and k not in paas}
