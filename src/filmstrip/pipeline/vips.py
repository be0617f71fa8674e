"""Process-wide libvips setup and turning libvips failures into categorised errors."""

from __future__ import annotations

import ctypes
import ctypes.util
import re

import pyvips

from filmstrip.compat.pyvips import leave_logs_to_glib
from filmstrip.errors import DataError, FilmstripError, ResourceError
from filmstrip.pipeline.options import PipelineOptions

_configured: PipelineOptions | None = None

#: The libvips loader classes allowed to run; every other loader is blocked process-wide.
VIPS_LOADERS = (
    "VipsForeignLoadJpeg",
    "VipsForeignLoadPng",
    "VipsForeignLoadWebp",
    "VipsForeignLoadNsgif",
    "VipsForeignLoadTiff",
    "VipsForeignLoadHeif",
)

_TRUNCATED = re.compile(r"premature end|unexpected end|truncat|bad seek|end of (?:file|data)", re.I)
_TOO_LONG = re.compile(r"maximum supported image dimension", re.I)
_TOO_LARGE = re.compile(r"security limit|too large", re.I)
_OUT_OF_MEMORY = re.compile(r"out of memory|cannot allocate|failed to allocate", re.I)
_NUMBERS = re.compile(r"\d+")
_NOISE = re.compile(
    r"^(unable to call|unable to load from|unable to copy to memory|unable to write|"
    r"VipsImage: killed)",
    re.I,
)


def configure_vips(options: PipelineOptions) -> None:
    """Set libvips up for a long-running server: small cache, bounded threads, trusted
    loaders only. Idempotent; call once per process before the first photo."""
    global _configured
    if _configured == options:
        return
    # A server sees each photo once: the operation cache only holds memory.
    pyvips.cache_set_max(options.vips_cache_max_ops)
    pyvips.cache_set_max_mem(options.vips_cache_max_mb * 1024 * 1024)
    pyvips.cache_set_max_files(0 if options.vips_cache_max_ops == 0 else 20)
    if options.vips_concurrency > 0:
        # Our own pool already runs one photo per CPU; libvips threads on top of that
        # only oversubscribe the cores and multiply per-thread buffers.
        pyvips.concurrency_set(options.vips_concurrency)
    # Untrusted loaders (ImageMagick, PDF, SVG, ...) never run, and of the rest only the
    # loaders for formats we accept do: hostile input cannot reach any other parser.
    pyvips.block_untrusted_set(True)
    pyvips.operation_block_set("VipsForeignLoad", True)
    for loader in VIPS_LOADERS:
        pyvips.operation_block_set(loader, False)
    _limit_malloc_arenas(2)
    # Python logging run from libvips' threads once aborted a worker (see the compat module).
    leave_logs_to_glib()
    _configured = options


def _limit_malloc_arenas(arenas: int) -> None:
    # glibc gives every thread its own malloc arena; libvips' per-thread buffers then
    # fragment them all and RSS creeps up in a long-running worker (pyvips#292). Two
    # arenas cut peak RSS by ~12% at concurrency 4 (bench/pipeline_bench.py). The same
    # as MALLOC_ARENA_MAX=2; a no-op off glibc.
    name = ctypes.util.find_library("c")
    if not name:
        return
    try:
        libc = ctypes.CDLL(name)
        m_arena_max = -8
        libc.mallopt(m_arena_max, arenas)
    except (OSError, AttributeError):
        return


def describe(exc: BaseException) -> str:
    """The useful lines of a libvips error message, without call-site noise, each once: a
    line that repeats an earlier one but for its numbers (``source: bad seek to 1372``,
    ``… 1354``: one per retried read) is left out."""
    lines: list[str] = []
    seen: set[str] = set()
    for raw in str(exc).splitlines():
        line = raw.strip()
        shape = _NUMBERS.sub("#", line)
        if line and not _NOISE.match(line) and shape not in seen:
            seen.add(shape)
            lines.append(line)
    return "; ".join(lines)[:300] or "the decoder gave no reason"


def decode_error(exc: BaseException, what: str) -> FilmstripError:
    """A categorised error for a libvips (or codec) failure while decoding ``what``."""
    detail = describe(exc)
    # The codes check_size gives for the same files when their header can be read:
    # ``too_large`` is the api's, for a file over the upload's byte limit.
    if _TOO_LONG.search(detail):
        return DataError(
            f"{what} has an edge longer than the decoder allows ({detail})",
            code="too_large_dimension",
        )
    if _TOO_LARGE.search(detail):
        return DataError(
            f"{what} has more pixels than the decoder allows ({detail})", code="too_many_pixels"
        )
    if _OUT_OF_MEMORY.search(detail):
        return ResourceError(
            f"out of memory while decoding {what} ({detail})", code="out_of_memory"
        )
    if _TRUNCATED.search(detail):
        return DataError(
            f"{what} is truncated or its data ends early ({detail})", code="truncated_image"
        )
    return DataError(f"{what} is corrupt and cannot be decoded ({detail})", code="corrupt_image")
