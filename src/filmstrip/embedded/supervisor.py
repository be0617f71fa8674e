"""Roles as child processes, for ``filmstrip dev``, the tests and the soaks: started from
their commands, ready once each answers its health check, stopped with SIGTERM (SIGKILL
once the grace is over), started again with a backoff when one dies. And the primitives
under it, for any child process: its environment, a guard against orphans, stopping it."""

from __future__ import annotations

import contextlib
import ctypes
import http.client
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from filmstrip.supervised import IDENTITY_HEADER

log = logging.getLogger("filmstrip.supervisor")

# A role that dies starts again after BACKOFF_S, doubled for each death within STABLE_S of
# its start, up to BACKOFF_MAX_S.
BACKOFF_S, BACKOFF_MAX_S, STABLE_S = 0.5, 30.0, 30.0


def command(*args: str) -> list[str]:
    """The argv of ``filmstrip args`` run by this interpreter."""
    return [sys.executable, "-m", "filmstrip.services.cli.main", *args]


def env_without_filmstrip() -> dict[str, str]:
    """This process's environment minus Filmstrip's settings (``FILMSTRIP_*`` and the PaaS
    names it honours): for a child given settings of its own."""
    paas = ("PORT", "DATABASE_URL", "REDIS_URL")
    return {k: v for k, v in os.environ.items() if not k.startswith("FILMSTRIP_") and k not in paas}


def die_with_parent() -> None:
    """In a child process: get SIGTERM when the parent dies (Linux), so nothing is orphaned."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)


def wait_or_kill(proc: subprocess.Popen[Any], timeout: float) -> int:
    """Wait up to ``timeout`` seconds for ``proc`` to exit, then SIGKILL it; its exit code."""
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


def stop_process(proc: subprocess.Popen[Any], timeout: float, *, kill: bool = False) -> None:
    """SIGTERM ``proc`` (SIGKILL with ``kill``) if it still runs, then :func:`wait_or_kill`."""
    if proc.poll() is not None:
        return
    if kill:
        proc.kill()
    else:
        proc.terminate()
    wait_or_kill(proc, timeout)


@dataclass
class Role:
    name: str
    argv: list[str]
    env: dict[str, str]
    health: str | None = None  # a URL answering 200 once ready; None: running is enough
    log: Path | None = None  # stdout and stderr appended there; None: the supervisor's
    cwd: Path | None = None
    # Given, the health answer must carry it (filmstrip.supervised): one from another
    # process holding the port is not this role's.
    identity: str | None = None


def launch_here(role: Role, output: int | None = None) -> subprocess.Popen[bytes]:
    """Start ``role`` here, in a session of its own (Ctrl-C reaches only the supervisor),
    told to stop when its parent dies; with no log its output goes to ``output`` (PIPE:
    both streams into one pipe)."""
    with open(role.log, "ab") if role.log else contextlib.nullcontext(output) as out:
        return subprocess.Popen(
            role.argv, env=role.env, cwd=role.cwd, stdin=subprocess.DEVNULL, stdout=out,
            stderr=None if out is None else subprocess.STDOUT, start_new_session=True,
            preexec_fn=die_with_parent,
        )  # fmt: skip


class RoleFailed(RuntimeError):
    """A role that exited, or did not answer its health check, before it was ready."""

    def __init__(self, role: str, reason: str) -> None:
        super().__init__(f"{role} {reason}")
        self.role, self.reason = role, reason


@dataclass
class _Slot:
    role: Role
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    backoff: float = BACKOFF_S
    restart_at: float | None = None  # set while a role that died waits to start again


class Supervisor:
    """Runs ``roles`` by name; ``launch`` starts one (here by default, on another host for
    the multi-host soak)."""

    def __init__(
        self, roles: Iterable[Role], launch: Callable[[Role], subprocess.Popen[bytes]] = launch_here
    ) -> None:
        self.slots = {role.name: _Slot(role) for role in roles}
        self.launch = launch

    @property
    def names(self) -> list[str]:
        return list(self.slots)

    def process(self, name: str) -> subprocess.Popen[bytes] | None:
        """The role's latest process (None before its first start)."""
        return self.slots[name].proc

    def running(self, name: str) -> bool:
        proc = self.slots[name].proc
        return proc is not None and proc.poll() is None

    def start(self, *names: str) -> None:
        """Start the named roles (all by default) that are not running."""
        for name in names or self.names:
            slot = self.slots[name]
            if not self.running(name):
                slot.proc, slot.started = self.launch(slot.role), time.monotonic()
                slot.restart_at = None

    def wait_ready(self, *names: str, timeout: float = 60.0) -> None:
        """Until each named role (all by default) answers its health check; raises
        :class:`RoleFailed` for one that exits first or is not ready within ``timeout``."""
        pending, deadline = list(names or self.names), time.monotonic() + timeout
        while pending:
            for name in list(pending):
                slot = self.slots[name]
                if not self.running(name):
                    code = slot.proc.returncode if slot.proc else None
                    raise RoleFailed(name, f"exited with {code} before it was ready")
                health, identity = slot.role.health, slot.role.identity
                if health is None or answers(health, identity=identity):
                    pending.remove(name)
            if pending and time.monotonic() > deadline:
                raise RoleFailed(pending[0], f"did not answer its health check in {timeout} s")
            if pending:
                time.sleep(0.1)

    def stop(self, *names: str, timeout: float = 30.0, kill: bool = False) -> None:
        """SIGTERM (SIGKILL with ``kill``) the named roles (all by default), then SIGKILL
        each that still runs ``timeout`` seconds later."""
        slots = [self.slots[name] for name in names or self.names]
        for slot in slots:
            slot.restart_at = None
            if slot.proc is not None and slot.proc.poll() is None:
                slot.proc.kill() if kill else slot.proc.terminate()
        deadline = time.monotonic() + timeout
        for slot in slots:
            if slot.proc is not None:
                wait_or_kill(slot.proc, max(0.0, deadline - time.monotonic()))

    def kill(self, *names: str) -> None:
        """SIGKILL the named roles (all by default) and wait for them."""
        self.stop(*names, kill=True)

    def keep_running(self) -> None:
        """Start again, once its backoff is over, each role that died; log both."""
        now = time.monotonic()
        for name, slot in self.slots.items():
            if slot.proc is None or slot.proc.poll() is None:
                continue
            if slot.restart_at is None:
                if now - slot.started > STABLE_S:
                    slot.backoff = BACKOFF_S
                slot.restart_at = now + slot.backoff
                code, slot.backoff = slot.proc.returncode, min(slot.backoff * 2, BACKOFF_MAX_S)
                log.warning(
                    "%s exited with %s; starting it again in %.1f s", name, code,
                    slot.restart_at - now, extra={"child": name, "code": code},
                )  # fmt: skip
            elif now >= slot.restart_at:
                self.start(name)
                log.info("%s started again", name, extra={"child": name})


def answers(url: str, timeout: float = 2.0, *, identity: str | None = None) -> bool:
    """Whether a GET of ``url`` answers 200 (straight to its host: no proxy), and, with
    ``identity``, carries it (the process that answers is the one given it)."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port or 80, timeout=timeout)
    try:
        conn.request("GET", parts.path or "/")
        resp = conn.getresponse()
        if identity is not None and resp.getheader(IDENTITY_HEADER) != identity:
            return False
        return resp.status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()
