"""The soak's CPU pinning reaches every thread and child of a process tree."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from bench.affinity import pin_tree, split_cpus
from bench.procstat import threads

# A process with a second thread and a child process (which has a thread of its own),
# all started before the pinning, each blocked until stdin closes.
_CHILD = (
    "import sys, threading; threading.Thread(target=sys.stdin.read).start();"
    " print('up', flush=True); sys.stdin.read()"
)
_TREE = f"""
import subprocess, sys, threading
child = subprocess.Popen([sys.executable, "-c", {_CHILD!r}],
    stdin=subprocess.PIPE, stdout=subprocess.PIPE)
child.stdout.readline()
threading.Thread(target=sys.stdin.read, daemon=True).start()
print(child.pid, flush=True)
sys.stdin.read()
child.stdin.close()
child.wait()
"""


@pytest.fixture
def tree() -> Iterator[tuple[int, int]]:
    proc = subprocess.Popen(
        [sys.executable, "-c", _TREE], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdin is not None
    child = int(proc.stdout.readline())
    yield proc.pid, child
    proc.stdin.close()
    proc.wait(timeout=10)


def test_every_thread_of_the_tree_is_pinned(tree: tuple[int, int]) -> None:
    parent, child = tree
    cpu = min(os.sched_getaffinity(0))
    by_pid = {pid: threads(pid) for pid in (parent, child)}
    assert all(len(tids) >= 2 for tids in by_pid.values())
    pinned = pin_tree(parent, [cpu])
    assert pinned >= sum(len(tids) for tids in by_pid.values())
    for tids in by_pid.values():
        for tid in tids:
            assert os.sched_getaffinity(tid) == {cpu}


def test_split_keeps_a_cpu_on_each_side() -> None:
    cpus = sorted(os.sched_getaffinity(0))
    with pytest.raises(ValueError):
        split_cpus(0)
    with pytest.raises(ValueError):
        split_cpus(len(cpus))
    if len(cpus) >= 2:
        measured, aside = split_cpus(1)
        assert measured == cpus[:-1] and aside == cpus[-1:]


def test_a_gone_process_pins_nothing() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    assert pin_tree(proc.pid, sorted(os.sched_getaffinity(0))) == 0
