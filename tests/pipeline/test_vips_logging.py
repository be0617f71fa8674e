"""libvips warnings never run Python code inside libvips: a warning raised while another
is being handled used to abort the whole process (GLib's recursion check)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# A logging handler that makes libvips warn again while a warning is being handled: the
# same re-entry as the cyclic GC freeing a warned image inside pyvips' log callback.
SCRIPT = textwrap.dedent(
    """
    import logging
    import pyvips
    from filmstrip.pipeline import PipelineOptions
    from filmstrip.pipeline.vips import configure_vips

    configure_vips(PipelineOptions())
    jpeg = pyvips.Image.xyz(256, 256).cast("uchar").jpegsave_buffer(Q=90)
    truncated = jpeg[: len(jpeg) // 2]

    def warn() -> None:
        try:
            pyvips.Image.new_from_buffer(truncated, "").copy_memory()
        except pyvips.Error:
            pass

    class Reenter(logging.Handler):
        busy = False

        def emit(self, record: logging.LogRecord) -> None:
            if not Reenter.busy:
                Reenter.busy = True
                warn()
                Reenter.busy = False

    logging.getLogger("pyvips").addHandler(Reenter())
    warn()
    print("survived")
    """
)


def test_a_warning_while_handling_a_warning_does_not_abort() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=ROOT,
        env={"PYTHONPATH": f"{ROOT / 'src'}:{ROOT}", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "survived"
    # The warnings still reach the log stream, through GLib's own handler.
    assert "VIPS-WARNING" in done.stderr
    assert "could not find handler" not in done.stderr
