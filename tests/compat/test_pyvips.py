"""The pyvips internal ``filmstrip/compat/pyvips.py`` relies on: this fails loudly when a
pyvips upgrade moves it, so libvips' warnings cannot silently go back to running Python
on libvips' threads (which aborted a worker fed hostile files)."""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path

import pyvips

from filmstrip.compat import pyvips as compat

ROOT = Path(__file__).resolve().parents[2]
# In a fresh process: this one's libvips may have been set up already.
TAKEN_OFF = """
import pyvips
from filmstrip.compat.pyvips import leave_logs_to_glib
assert pyvips._log_handler_id
leave_logs_to_glib()
assert pyvips._log_handler_id is None
leave_logs_to_glib()  # idempotent: the worker may set libvips up again
"""


def test_pyvips_is_the_release_the_internal_was_read_from() -> None:
    assert pyvips.__version__.startswith(compat.PYVIPS_VERSION + "."), (
        f"pyvips {pyvips.__version__}: re-read how it installs its GLib log handler, then"
        " update filmstrip/compat/pyvips.py"
    )


def test_pyvips_installs_a_vips_log_handler_that_its_exit_hook_removes() -> None:
    source = inspect.getsource(pyvips)
    assert "_log_handler_id = glib_lib.g_log_set_handler(_to_bytes('VIPS')" in source
    assert "_remove_handler(_to_bytes('VIPS'), _log_handler_id)" in source
    done = subprocess.run(
        [sys.executable, "-c", TAKEN_OFF], cwd=ROOT, capture_output=True, text=True,
        env={"PYTHONPATH": f"{ROOT / 'src'}:{ROOT}", "PATH": "/usr/bin:/bin"}, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]


def test_a_rerunnable_pipeline_reads_its_buffer_afresh_each_run() -> None:
    # Rerunnable relies on libvips caching no pixels between two write_to_memory calls.
    rerunnable = compat.Rerunnable(1, "uchar", "b-w", lambda image: image.linear(2, 1))
    strip = compat.Rerunnable.WIDTH * compat.Rerunnable.HEIGHT
    for value in (3, 7, 100):
        pixels = bytes([value]) * (strip + 5)  # a whole strip, then part of one
        got, out = rerunnable.run(memoryview(pixels))
        assert (str(out.format), out.bands) == ("float", 1)
        floats = memoryview(got).cast("f")
        assert len(floats) == strip + 5
        assert set(floats) == {2.0 * value + 1}
