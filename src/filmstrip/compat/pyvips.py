"""pyvips internals: libvips' log messages left to GLib's own handler, and a pipeline
built once and rerun over new pixels (:class:`Rerunnable`). Fits pyvips 3.2.

pyvips sends libvips' log messages to Python logging from whichever libvips thread emits
them. Python code there may run the cyclic GC, which may free an image whose disposal logs
again ("read gave 1 warnings"); GLib treats a message logged inside a log handler as fatal
and aborts the process. A worker fed hostile files died this way. pyvips has no public way
to take its handler away; its exit hook ``_remove_log_handler`` does, after which GLib's
own handler writes the messages to stderr without running any Python.
``tests/compat/test_pyvips.py`` fails loudly when that changes;
``tests/pipeline/test_vips_logging.py`` checks what it does.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import pyvips
from pyvips import Image

#: The pyvips release this internal was read from.
PYVIPS_VERSION = "3.2"


def leave_logs_to_glib() -> None:
    """Take pyvips' Python log handler off libvips' messages (idempotent)."""
    pyvips._remove_log_handler()


class Rerunnable:
    """A pipeline built once over a memory image, run again over new pixels (thread-safe).

    For operations whose set-up costs more than their work (an ICC transform: lcms builds
    it in ~17 ms, for a 100x100 photo converted in 1). It relies on libvips reading a
    ``new_from_memory`` image's buffer afresh on each evaluation and caching no pixels of
    a pipeline between two ``write_to_memory`` calls; ``tests/compat/test_pyvips.py``
    fails loudly when that changes. Only for per-pixel operations: the pixels pass through
    in strips of another shape than the photo's.
    """

    WIDTH = 1024
    HEIGHT = 64

    def __init__(
        self, bands: int, format: str, interpretation: str, build: Callable[[Image], Image]
    ) -> None:
        self._in_pixel = bands * _SIZEOF[format]
        self._buffer = bytearray(self.WIDTH * self.HEIGHT * self._in_pixel)
        template = Image.new_from_memory(self._buffer, self.WIDTH, self.HEIGHT, bands, format)
        self.template = template.copy(interpretation=interpretation)
        self._build = build
        self._out: Image | None = None
        self._lock = threading.Lock()

    def run(self, pixels: memoryview) -> tuple[bytes, Image]:
        """``build(template)`` applied to ``pixels`` (the input's bytes, any number of
        whole pixels) and the built pipeline's output, whose header describes the bytes."""
        strip = len(self._buffer)
        parts = []
        with self._lock:
            if self._out is None:
                self._out = self._build(self.template)
            out = self._out
            out_pixel = out.bands * _SIZEOF[str(out.format)]
            for start in range(0, len(pixels), strip):
                chunk = pixels[start : start + strip]
                self._buffer[: len(chunk)] = chunk
                done = out.write_to_memory()
                parts.append(done[: len(chunk) // self._in_pixel * out_pixel])
        return b"".join(parts), out


_SIZEOF = {
    "uchar": 1,
    "char": 1,
    "ushort": 2,
    "short": 2,
    "uint": 4,
    "int": 4,
    "float": 4,
    "double": 8,
}
