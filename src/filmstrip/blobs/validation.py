"""The key rules every blob store enforces, so a key valid in one store is valid in all."""

from __future__ import annotations

from filmstrip.errors import LogicError

MAX_KEY_BYTES = 1024  # S3's limit; the filesystem store keeps to it too


def check_key(key: str) -> str:
    """Return ``key`` if it is a safe relative ``/``-separated path, else raise ``LogicError``.

    Segments may not be empty, ``.``/``..``, or start with ``.`` (the filesystem store keeps
    its temp files and metadata in dot-directories under the root).
    """
    if not key:
        raise LogicError("blob key is empty", code="bad_blob_key")
    if "\x00" in key or "\\" in key:
        raise LogicError(f"blob key {key!r} contains NUL or a backslash", code="bad_blob_key")
    if key.startswith("/"):
        raise LogicError(f"blob key {key!r} is absolute", code="bad_blob_key")
    if len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
        raise LogicError(f"blob key is longer than {MAX_KEY_BYTES} bytes", code="bad_blob_key")
    for segment in key.split("/"):
        if not segment or segment.startswith("."):
            raise LogicError(
                f"blob key {key!r} has an empty, dot or hidden segment", code="bad_blob_key"
            )
    return key


def is_valid_key(key: str) -> bool:
    """Whether :func:`check_key` takes ``key``: a listing may hold keys no store call can
    name (written by another tool, or by hand), which a sweep must step over."""
    try:
        check_key(key)
    except LogicError:
        return False
    return True


def check_prefix(prefix: str) -> str:
    """Return ``prefix`` if listing by it cannot reach outside the store (``""`` is fine)."""
    if not prefix:
        return prefix
    # A prefix may end mid-segment ("originals/ab") or with "/", but must otherwise
    # follow the key rules.
    check_key(prefix.rstrip("/") or "x")
    if prefix.startswith("/"):
        raise LogicError(f"blob prefix {prefix!r} is absolute", code="bad_blob_key")
    return prefix
