"""A throwaway redis-server in a temp dir, for the benches and the tests to kill and restart."""

from __future__ import annotations

import shutil
import tempfile

from filmstrip.embedded.redis_server import RedisServer as EmbeddedRedis


class RedisServer(EmbeddedRedis):
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
