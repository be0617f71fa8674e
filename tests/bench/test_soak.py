"""The chaos soak at a small size: workers SIGKILLed, Redis restarted, S3 cut, bus
restarted while clients upload; nothing lost, duplicated, stuck or orphaned."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_small_chaos_soak_keeps_every_guarantee(corpus: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "bench.soak", "-n", "40", "--clients", "8", "--fast"],
        cwd=ROOT, capture_output=True, text=True, timeout=480,
    )  # fmt: skip
    print(out.stdout[-4000:], out.stderr[-2000:])
    assert "restart Redis" in out.stdout and "restart the bus" in out.stdout
    assert "S3 unreachable" in out.stdout
    assert "RESULT: ok" in out.stdout, out.stdout
    assert out.returncode == 0
