"""The chaos soak at a small size: workers SIGKILLed, Redis restarted, S3 cut, bus
restarted while clients upload; nothing lost, duplicated, stuck or orphaned."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# A run takes 20-35 s here; the soak's own waits for a missing event end well before this.
LIMIT_S = 150


@pytest.mark.timeout(LIMIT_S + 60)
def test_small_chaos_soak_keeps_every_guarantee(corpus: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.soak", "-n", "40", "--clients", "8", "--fast"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        stdout, stderr = proc.communicate(timeout=LIMIT_S)
    except subprocess.TimeoutExpired:
        # Interrupted, the soak stops its cluster and says where it kept the logs; its
        # progress lines say what it was waiting for.
        proc.send_signal(signal.SIGINT)
        try:
            stdout, stderr = proc.communicate(timeout=45)
        except subprocess.TimeoutExpired:
            proc.kill()
            stdout, stderr = proc.communicate()
        pytest.fail(f"the soak took over {LIMIT_S} s:\n{stdout[-4000:]}\n{stderr[-4000:]}")
    print(stdout[-4000:], stderr[-2000:])
    assert "restart Redis" in stdout and "restart the bus" in stdout
    assert "S3 unreachable" in stdout
    assert "RESULT: ok" in stdout, stdout
    assert proc.returncode == 0
