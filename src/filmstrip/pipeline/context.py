"""Per-photo state shared by the stages of one pipeline run."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pyvips

from filmstrip.errors import DataError, ResourceError
from filmstrip.pipeline.decode import (
    Header,
    check_limits,
    decode_rendition,
    decodes_opened,
    open_header,
    what_is,
)
from filmstrip.pipeline.derivatives import Derivative
from filmstrip.pipeline.options import PipelineOptions
from filmstrip.protocols.formats import sniff_format


class StageContext:
    """The original's bytes, the options, and what the stages have produced so far.

    The header and the shared rendition are computed once, by whichever stage needs them
    first, so a pipeline decodes the photo's pixels once for every derivative. A context
    belongs to one pipeline run: stages use it one at a time, never concurrently.
    """

    def __init__(self, data: bytes, options: PipelineOptions) -> None:
        self.data = data
        self.options = options
        self.metadata: dict[str, Any] = {}
        self.derivatives: dict[str, Derivative] = {}
        self._header: Header | None = None
        # The image the header was read from, until the one decode takes it over.
        self._opened: pyvips.Image | None = None
        self._rendition: pyvips.Image | None = None
        self._small: pyvips.Image | None = None
        self._cancelled = threading.Event()
        self._aborted = threading.Event()
        # The image a stage is computing, for cancel() to kill; held only while it computes
        # (it keeps its decoded source alive, which must go when the stage drops it).
        self._computing: pyvips.Image | None = None
        self._watch_lock = threading.Lock()

    # --- cancellation -------------------------------------------------------------------

    def cancel(self) -> None:
        """Ask the stage running on this context to stop: libvips abandons the images it
        is computing at their next tile."""
        with self._watch_lock:
            self._cancelled.set()
            if self._computing is not None:
                self._computing.set_kill(True)

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    @property
    def aborted(self) -> bool:
        """True once the stage's thread stopped work because the stage was cancelled."""
        return self._aborted.is_set()

    def check_cancelled(self) -> None:
        """Raise the timeout error if the stage was cancelled; called between steps."""
        if self._cancelled.is_set():
            self._aborted.set()
            raise ResourceError(
                "the stage was stopped after its time ran out", code="stage_timeout"
            )

    @contextmanager
    def watch(self, image: pyvips.Image) -> Iterator[pyvips.Image]:
        """``image``, which :meth:`cancel` kills at its next tile while the block computes it.

        The kill flag is set from the cancelling thread. libvips' progress signal could
        do it from inside, but it calls into Python from libvips' threads every few tiles,
        and each call waits for the GIL: 4% of the stages' throughput with two pipeline
        threads in a process, more beside a busy event loop.
        """
        with self._watch_lock:
            if self._cancelled.is_set():
                image.set_kill(True)
            self._computing = image
        try:
            yield image
        finally:
            with self._watch_lock:
                self._computing = None

    # --- shared, computed once ----------------------------------------------------------

    def header(self) -> Header:
        """The validated header: accepted format, within every limit. No pixels decoded."""
        if self._header is None:
            if not self.data:
                raise DataError("the file is empty", code="empty_file")
            fmt = sniff_format(self.data[:64])
            if fmt is None:
                raise DataError(
                    "the file is not a JPEG, PNG, WebP, GIF, TIFF, HEIC or AVIF image "
                    f"({what_is(self.data[:64])})",
                    code="unsupported_type",
                )
            header, opened = open_header(self.data, fmt, self.options)
            check_limits(header, self.options)
            self._header = header
            self._opened = opened if decodes_opened(header, self.options) else None
        return self._header

    def rendition(self) -> pyvips.Image:
        """The one decode: upright sRGB first frame at rendition size, in memory."""
        if self._rendition is None:
            header = self.header()
            self.check_cancelled()
            opened, self._opened = self._opened, None
            try:
                self._rendition = decode_rendition(
                    self.data, header, self.options, self.watch, opened
                )
            except DataError:
                self.check_cancelled()
                raise
        return self._rendition

    def small(self) -> pyvips.Image:
        """The rendition at thumbnail size, in memory: the thumbnail and the fingerprints
        are both cut from it (hashing a 256 px image costs a fifth of a 1440 px one)."""
        if self._small is None:
            rendition = self.rendition()
            size = min(self.options.thumbnail_size, self.options.rendition_size)
            scale = size / max(rendition.width, rendition.height)
            if scale < 1.0:
                # gap=1: box-shrink by the whole factor, Lanczos only for the rest; a
                # third cheaper than the default and indistinguishable at 256 px.
                self._small = rendition.resize(scale, kernel="lanczos3", gap=1.0).copy_memory()
            else:
                self._small = rendition
        return self._small
