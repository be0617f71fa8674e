"""Files that hold client data are readable by their owner only.

The catalog (token hashes, client names, every photo's GPS), the blobs, partial uploads and
the embedded Redis's files all hold client data. One mechanism covers them all: every
command sets the process umask once at start (``FILMSTRIP_UMASK``, 077), so whatever the
process, its thread pools, SQLite or the redis-server it starts creates is 0600 (files)
or 0700 (directories) wherever it is made. What an older version left is tightened at start
where that is cheap: the catalog's files, and the top directory of each store the service
owns; nothing under a 0700 directory can be reached by others, so the store's old files
need no walk.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

from filmstrip.settings import Settings, database_backend, sqlite_path

log = logging.getLogger("filmstrip.file_modes")

# SQLite's companions of the catalog file (WAL, shared memory) and our writers' flock.
CATALOG_SUFFIXES = ("", "-wal", "-shm", "-writelock")


def restrict(settings: Settings) -> list[Path]:
    """Set the process umask, then tighten what an older version left; the paths changed."""
    umask = settings.file_umask
    os.umask(umask)
    changed = [path for path in private_paths(settings) if _tighten(path, umask)]
    if changed:
        log.warning(
            "made files of an older version readable by their owner only",
            extra={"paths": [str(p) for p in changed]},
        )
    return changed


def private_paths(settings: Settings) -> list[Path]:
    """The catalog's files and the roots of the local stores, whether or not they exist."""
    paths: list[Path] = []
    url = settings.effective_database_url
    if database_backend(url) == "sqlite" and sqlite_path(url) != ":memory:":
        paths += [Path(sqlite_path(url) + s) for s in CATALOG_SUFFIXES]
    if settings.effective_blob_url.startswith("file://"):
        from filmstrip.blobs.fs import root_of_url

        paths.append(root_of_url(settings.effective_blob_url))
    paths += [
        settings.effective_tus_dir,
        settings.effective_original_cache_dir,
        settings.embedded_redis_dir,
    ]
    return paths


def _tighten(path: Path, umask: int) -> bool:
    """Take the bits ``umask`` masks off ``path``, if this user owns it and it is no shared
    sticky directory such as /tmp (a setting may point a store there); True if it changed."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return False
    mode = stat.S_IMODE(st.st_mode)
    wanted = mode & ~umask
    if wanted == mode or st.st_uid != os.geteuid() or mode & stat.S_ISVTX:
        return False
    path.chmod(wanted)
    return True
