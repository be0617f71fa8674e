"""Decompression bombs are refused without allocating their pixels (peak RSS measured)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

LIMIT_MB = 500

SCRIPT = r"""
import json, sys
from filmstrip.errors import DataError
from filmstrip.pipeline import PipelineOptions, resolve_stages
from filmstrip.pipeline.context import StageContext
from filmstrip.pipeline.vips import configure_vips
from filmstrip.pipeline.registry import get_stage

options = PipelineOptions()
configure_vips(options)
codes = {}
for path in sys.argv[1:]:
    ctx = StageContext(open(path, "rb").read(), options)
    try:
        for name in resolve_stages("full_processing"):
            get_stage(name).run(ctx)
        codes[path] = "accepted"
    except DataError as exc:
        codes[path] = exc.code
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent (pytest) on exec.
status = open("/proc/self/status").read().splitlines()
rss_mb = next(int(l.split()[1]) for l in status if l.startswith("VmHWM:")) / 1024
print(json.dumps({"codes": codes, "rss_mb": rss_mb}))
"""

BOMBS = [
    "bomb_30000x30000.png",
    "16384x16384.png",
    "17000x17000.avif",
    "max_size.jpg",
    "decompression_bomb.gif",
    "png_decompression_dos.png",
]


def test_bombs_stay_under_the_memory_limit(corpus: Path) -> None:
    paths = [str(corpus / "bad" / name) for name in BOMBS]
    root = Path(__file__).resolve().parents[2]
    env_path = f"{root / 'src'}:{root}"
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, *paths],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PYTHONPATH": env_path, "PATH": "/usr/bin:/bin"},
        check=True,
    )
    report = json.loads(done.stdout.strip().splitlines()[-1])
    codes = report["codes"]
    for name in BOMBS[:5]:
        assert codes[str(corpus / "bad" / name)] != "accepted", name
    # The text-chunk bomb is a 1x1 picture: accepted, and its text is never inflated.
    assert codes[str(corpus / "bad" / "png_decompression_dos.png")] == "accepted"
    assert report["rss_mb"] < LIMIT_MB, report
