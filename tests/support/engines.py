"""The other engines' pass of ``scripts/test``: the role tests again on a PostgreSQL catalog
and the newest Redis line found, as a deployment beyond one machine runs them.

    python -m tests.support.engines DIR

links the newest redis-server (and its redis-cli) into DIR, to be put first on PATH, and
prints what the pass will run on. Exit status 3 when there is no PostgreSQL to run on (a
fresh machine without one): the pass is then skipped, as the catalog suite's PostgreSQL
tests are.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support import postgres
from tests.support.redis_versions import binaries

NO_POSTGRES = 3


def link_newest_redis(directory: Path) -> str:
    """Link the newest Redis line's redis-server and redis-cli into ``directory``; its
    version line."""
    found = binaries()
    server = Path(found[max(found)])
    directory.mkdir(parents=True, exist_ok=True)
    for name in ("redis-server", "redis-cli"):
        link = directory / name
        link.unlink(missing_ok=True)
        if (server.parent / name).exists():
            link.symlink_to(server.parent / name)
    out = subprocess.run([str(server), "--version"], capture_output=True, text=True).stdout
    return f"{server}: {out.strip()}"


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    reason = postgres.unreachable()
    if reason is not None:
        print(f"skipped: {reason}")
        return NO_POSTGRES
    print(f"catalog PostgreSQL at {postgres.SERVER_URL}; Redis {link_newest_redis(Path(argv[0]))}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
