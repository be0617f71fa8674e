"""The supervisor of roles (real processes): ready once each answers its health check, a
role that cannot start reported, stopped with SIGTERM and SIGKILL once the grace is over,
started by a launch hook when given one."""

from __future__ import annotations

import itertools
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from filmstrip.embedded.redis_server import free_port
from filmstrip.embedded.supervisor import (
    BACKOFF_MAX_S,
    BACKOFF_S,
    STABLE_S,
    Role,
    RoleFailed,
    Supervisor,
    env_without_filmstrip,
    launch_here,
    stop_process,
    wait_or_kill,
)

# Ignores SIGTERM, says it is ready, then sleeps: only SIGKILL ends it.
STUBBORN = (
    "import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "print('ready', flush=True); time.sleep(60)"
)


def _start(code: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def test_a_process_that_ignores_sigterm_is_killed_after_the_timeout() -> None:
    proc = _start(STUBBORN)
    started = time.monotonic()
    stop_process(proc, 0.5)
    assert proc.returncode == -signal.SIGKILL
    assert 0.4 < time.monotonic() - started < 10


def test_a_polite_process_exits_on_sigterm() -> None:
    proc = _start("import time; print('ready', flush=True); time.sleep(60)")
    stop_process(proc, 10)
    assert proc.returncode == -signal.SIGTERM


def test_kill_skips_the_grace_and_a_finished_process_is_left_alone() -> None:
    proc = _start(STUBBORN)
    started = time.monotonic()
    stop_process(proc, 30, kill=True)
    assert proc.returncode == -signal.SIGKILL
    assert time.monotonic() - started < 10
    stop_process(proc, 30)  # already gone: nothing to do, no error
    assert wait_or_kill(proc, 1) == -signal.SIGKILL


def _http_role(name: str, tmp_path: Path, *, delay_s: float = 0.0) -> Role:
    """A process that serves HTTP (200 on /) on a free port after ``delay_s``."""
    port = free_port()
    code = f"import time, runpy, sys; time.sleep({delay_s}); sys.argv = ['x', '{port}']; "
    code += "runpy.run_module('http.server', run_name='__main__')"
    argv = [sys.executable, "-c", code]
    return Role(name, argv, env_without_filmstrip(), f"http://127.0.0.1:{port}/", cwd=tmp_path)


def test_ready_once_every_role_answers_its_health_check(tmp_path: Path) -> None:
    slow = _http_role("slow", tmp_path, delay_s=1.0)
    supervisor = Supervisor([slow, _http_role("quick", tmp_path)])
    try:
        supervisor.start()
        assert slow.health is not None
        with pytest.raises(OSError):  # not listening yet
            urllib.request.urlopen(slow.health, timeout=1)
        supervisor.wait_ready(timeout=30)
        with urllib.request.urlopen(slow.health, timeout=5) as resp:
            assert resp.status == 200
    finally:
        supervisor.stop(timeout=10)
    assert not supervisor.running("slow") and not supervisor.running("quick")


def test_a_role_that_exits_before_it_is_ready_is_reported_by_name(tmp_path: Path) -> None:
    log = tmp_path / "broken.log"
    broken = Role("broken", [sys.executable, "-c", "print('no luck'); raise SystemExit(3)"],
                  env_without_filmstrip(), "http://127.0.0.1:9/", log)  # fmt: skip
    supervisor = Supervisor([_http_role("fine", tmp_path), broken])
    try:
        supervisor.start()
        with pytest.raises(RoleFailed) as failed:
            supervisor.wait_ready(timeout=30)
    finally:
        supervisor.stop(timeout=10)
    assert failed.value.role == "broken"
    assert "exited with 3" in str(failed.value)
    assert log.read_text() == "no luck\n"  # its output went to its log


def test_stop_gives_every_role_one_grace_then_kills(tmp_path: Path) -> None:
    roles = [
        Role(f"stubborn{i}", [sys.executable, "-c", STUBBORN], env_without_filmstrip(),
             log=tmp_path / f"{i}.log")
        for i in range(3)
    ]  # fmt: skip
    supervisor = Supervisor(roles)
    supervisor.start()
    deadline = time.monotonic() + 30
    while any((tmp_path / f"{i}.log").read_text() != "ready\n" for i in range(3)):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    started = time.monotonic()
    supervisor.stop(timeout=1)
    # One grace for all of them, not one each.
    assert 0.9 < time.monotonic() - started < 2.5
    for name in supervisor.names:
        proc = supervisor.process(name)
        assert proc is not None and proc.returncode == -signal.SIGKILL


def test_roles_start_through_the_launch_hook(tmp_path: Path) -> None:
    launched: list[str] = []

    def launch(role: Role) -> subprocess.Popen[bytes]:
        launched.append(role.name)
        return launch_here(role)

    supervisor = Supervisor([_http_role("one", tmp_path)], launch=launch)
    try:
        supervisor.start()
        supervisor.wait_ready(timeout=30)
        supervisor.kill("one")
        supervisor.start("one")
    finally:
        supervisor.stop(timeout=10)
    assert launched == ["one", "one"]


def test_a_role_that_keeps_dying_starts_again_each_time_later(tmp_path: Path) -> None:
    starts: list[float] = []

    def launch(role: Role) -> subprocess.Popen[bytes]:
        starts.append(time.monotonic())
        return launch_here(role)

    dies = Role("dies", [sys.executable, "-c", "pass"], env_without_filmstrip())
    supervisor = Supervisor([dies], launch=launch)
    supervisor.start()
    deadline = time.monotonic() + 30
    while len(starts) < 4:
        assert time.monotonic() < deadline
        supervisor.keep_running()
        time.sleep(0.02)
    supervisor.stop(timeout=5)
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    # 0.5 s, then 1, then 2, each plus the moment it takes to exit and be seen.
    assert gaps[0] >= 0.5 and gaps[1] >= 1.0 and 2.0 <= gaps[2] < 5, gaps


def test_a_role_that_runs_but_never_answers_is_reported_after_the_timeout(tmp_path: Path) -> None:
    silent = Role("silent", [sys.executable, "-c", "import time; time.sleep(60)"],
                  env_without_filmstrip(), f"http://127.0.0.1:{free_port()}/")  # fmt: skip
    supervisor = Supervisor([silent])
    try:
        supervisor.start()
        started = time.monotonic()
        with pytest.raises(RoleFailed, match="silent did not answer its health check in 1"):
            supervisor.wait_ready(timeout=1)
        assert time.monotonic() - started < 10
    finally:
        supervisor.stop(timeout=10)


def test_only_a_200_is_an_answer(tmp_path: Path) -> None:
    role = _http_role("lost", tmp_path)
    assert role.health is not None
    role.health += "no-such-page"  # the server answers 404 there
    supervisor = Supervisor([role])
    try:
        supervisor.start()
        with pytest.raises(RoleFailed, match="did not answer"):
            supervisor.wait_ready(timeout=3)
    finally:
        supervisor.stop(timeout=10)


def test_start_leaves_a_running_role_alone(tmp_path: Path) -> None:
    supervisor = Supervisor([Role("s", [sys.executable, "-c", STUBBORN], env_without_filmstrip(),
                                  log=tmp_path / "s.log")])  # fmt: skip
    try:
        supervisor.start()
        first = supervisor.process("s")
        supervisor.start()
        assert supervisor.process("s") is first
    finally:
        supervisor.kill()


def test_the_backoff_is_capped_and_forgotten_after_a_stable_run() -> None:
    supervisor = Supervisor([Role("dies", [sys.executable, "-c", "pass"], env_without_filmstrip())])
    slot = supervisor.slots["dies"]
    try:
        supervisor.start()
        assert slot.proc is not None
        slot.proc.wait(timeout=30)
        slot.backoff = BACKOFF_MAX_S * 0.75  # it died often, just after each start
        supervisor.keep_running()
        assert slot.backoff == BACKOFF_MAX_S
        slot.restart_at, slot.started = None, time.monotonic() - STABLE_S - 1
        supervisor.keep_running()  # this death came after a stable run
        assert slot.restart_at is not None
        assert slot.restart_at - time.monotonic() <= BACKOFF_S
    finally:
        supervisor.stop(timeout=5)


def test_a_role_stopped_on_purpose_is_not_started_again() -> None:
    supervisor = Supervisor([Role("dies", [sys.executable, "-c", "pass"], env_without_filmstrip())])
    supervisor.start()
    first = supervisor.process("dies")
    assert first is not None
    first.wait(timeout=30)
    supervisor.keep_running()  # its restart is due in BACKOFF_S
    supervisor.stop(timeout=5)
    time.sleep(BACKOFF_S + 0.2)
    supervisor.keep_running()
    assert supervisor.process("dies") is first


def test_a_child_s_environment_holds_none_of_filmstrip_s_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A PaaS PORT left in would win over the FILMSTRIP_API_PORT the child is given.
    for name in ("PORT", "DATABASE_URL", "REDIS_URL", "FILMSTRIP_API_PORT"):
        monkeypatch.setenv(name, "1")
    monkeypatch.setenv("LANG", "C.UTF-8")
    env = env_without_filmstrip()
    assert not {"PORT", "DATABASE_URL", "REDIS_URL", "FILMSTRIP_API_PORT"} & env.keys()
    assert env["LANG"] == "C.UTF-8"
