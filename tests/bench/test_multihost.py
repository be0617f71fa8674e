"""The multi-host soak at a small size: api, worker and bus hosts that share no disk,
over PostgreSQL, SeaweedFS and Redis on an infra host, while a worker host is SIGKILLed,
an api host's link is cut mid-upload and PostgreSQL, a bus and Redis restart; nothing
lost, duplicated, stuck or orphaned, and nothing of the run left behind."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from bench.hosts import PREFIX, namespaces, netns_pids
from bench.hosts import unavailable as hosts_unavailable

ROOT = Path(__file__).resolve().parents[2]
# The bench runs this checkout's code, not the installed package.
ENV = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}"}
why = hosts_unavailable()
pytestmark = pytest.mark.skipif(why is not None, reason=f"the multi-host soak: {why}")

# A run takes ~20 s here; its own waits for a missing event end well before this.
LIMIT_S = 150


def _leftovers(pid: int) -> list[str]:
    """Namespaces and folders of the run with ``pid`` still there."""
    tag = f"{PREFIX}{pid}."
    folders = [str(p) for p in Path("/tmp").glob(f"filmstrip-{tag}*")]
    return [n for n in namespaces() if n.startswith(tag)] + folders


@pytest.mark.timeout(LIMIT_S + 60)
def test_small_multihost_soak_keeps_every_guarantee(corpus: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.multihost", "-n", "30", "--clients", "6", "--fast"],
        cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        stdout, stderr = proc.communicate(timeout=LIMIT_S)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGINT)  # it removes its hosts and says where its logs are
        stdout, stderr = proc.communicate(timeout=60)
        pytest.fail(f"the soak took over {LIMIT_S} s:\n{stdout[-4000:]}\n{stderr[-4000:]}")
    print(stdout[-4000:], stderr[-2000:])
    assert "cut host api1's link" in stdout, stdout
    assert "SIGKILL host worker" in stdout
    assert "restart PostgreSQL" in stdout and "restart a bus" in stdout
    assert "restart Redis" in stdout
    assert "RESULT: ok" in stdout, stdout
    assert proc.returncode == 0
    assert _leftovers(proc.pid) == []


@pytest.mark.timeout(120)
def test_an_interrupted_run_removes_everything_it_made(corpus: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.multihost", "-n", "400", "--clients", "4", "--fast"],
        cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stderr is not None
    # Interrupted mid-run, while the clients upload (its first progress line).
    for line in proc.stderr:
        if line.startswith("[soak"):
            break
    else:
        pytest.fail(f"the soak ended before it ran: {proc.communicate()}")
    assert _leftovers(proc.pid)  # its hosts are up
    hosts = {n: netns_pids(n) for n in namespaces() if n.startswith(f"{PREFIX}{proc.pid}.")}
    assert any(hosts.values())
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert _leftovers(proc.pid) == []
    # What it keeps is its logs, out of the way, and it says where.
    kept = [ln.split("logs kept in ")[1] for ln in stderr.splitlines() if "logs kept in" in ln]
    assert len(kept) == 1 and Path(kept[0]).is_dir()
    shutil.rmtree(Path(kept[0]).parent)
    # Every process that ran on its hosts is gone too.
    assert [p for pids in hosts.values() for p in pids if os.path.exists(f"/proc/{p}")] == []
