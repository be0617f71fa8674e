"""Where an unfinished tus upload can be found again: one small file per upload, named by
the api URL and the file's SHA-256, holding the upload's URL, so a run cut short (Ctrl-C,
a lost connection, a crash) resumes where the server's bytes end."""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path

import msgspec


class ResumePoint(msgspec.Struct, frozen=True, kw_only=True):
    api_url: str
    sha256: str
    upload_url: str


def default_directory() -> Path:
    """``$XDG_STATE_HOME/filmstrip/uploads`` (``~/.local/state/filmstrip/uploads``)."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "filmstrip" / "uploads"


class ResumeStore:
    """The resume points under ``directory`` (made on first use, private to the user)."""

    def __init__(self, directory: str | os.PathLike[str] | None = None) -> None:
        self.directory = Path(directory) if directory else default_directory()

    def _path(self, api_url: str, sha256: str) -> Path:
        key = hashlib.sha256(f"{api_url.rstrip('/')}\n{sha256}".encode()).hexdigest()[:40]
        return self.directory / f"{key}.json"

    async def get(self, api_url: str, sha256: str) -> str | None:
        """The upload URL kept for these bytes on this api, if any."""
        return await asyncio.to_thread(self._read, self._path(api_url, sha256))

    async def put(self, api_url: str, sha256: str, upload_url: str) -> None:
        point = ResumePoint(api_url=api_url, sha256=sha256, upload_url=upload_url)
        await asyncio.to_thread(self._write, self._path(api_url, sha256), point)

    async def drop(self, api_url: str, sha256: str) -> None:
        await asyncio.to_thread(self._path(api_url, sha256).unlink, missing_ok=True)

    @staticmethod
    def _read(path: Path) -> str | None:
        try:
            return msgspec.json.decode(path.read_bytes(), type=ResumePoint).upload_url
        except (OSError, msgspec.DecodeError):
            return None  # none, or unreadable: the upload starts afresh

    def _write(self, path: Path, point: ResumePoint) -> None:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        # Written whole, then renamed: a crash leaves the old point or the new, never half.
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        with open(tmp, "wb") as out:
            out.write(msgspec.json.encode(point))
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
