"""pyvips internals: libvips' log messages left to GLib's own handler. Fits pyvips 3.2.

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

import pyvips

#: The pyvips release this internal was read from.
PYVIPS_VERSION = "3.2"


def leave_logs_to_glib() -> None:
    """Take pyvips' Python log handler off libvips' messages (idempotent)."""
    pyvips._remove_log_handler()
