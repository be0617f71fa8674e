"""What ``filmstrip dev`` shows of its roles: their log lines on its stderr, as they are
(JSON) or readable for people, and the reason a role gave for not starting."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from typing import IO, Any

import orjson

from filmstrip.clock import iso_utc
from filmstrip.embedded.supervisor import Role, RoleFailed, launch_here
from filmstrip.logs import readable


class RoleOutput:
    """Starts roles with their output piped through here; ``readable`` renders their JSON
    lines for people (``colour``: the roles' names coloured)."""

    def __init__(self, *, readable: bool, colour: bool) -> None:
        self.readable, self.colour = readable, colour
        self.cannot_start: dict[str, dict[str, Any]] = {}  # a role's "cannot start" record
        self.last: dict[str, str] = {}  # each role's last line
        self.readers: dict[str, threading.Thread] = {}
        self.lock = threading.Lock()

    def launch(self, role: Role) -> subprocess.Popen[bytes]:
        proc = launch_here(role, subprocess.PIPE)
        assert proc.stdout is not None
        # A daemon: a grandchild holding the pipe open cannot keep dev from exiting.
        reader = threading.Thread(target=self._forward, args=(role.name, proc.stdout), daemon=True)
        reader.start()
        self.readers[role.name] = reader
        return proc

    def _forward(self, name: str, pipe: IO[bytes]) -> None:
        for raw in pipe:
            line = raw.decode(errors="replace").rstrip("\n")
            try:
                fields = orjson.loads(line) if line.startswith("{") else None
            except orjson.JSONDecodeError:
                fields = None
            if isinstance(fields, dict) and fields.get("msg") == "cannot start":
                self.cannot_start[name] = fields  # said once, by dev, when it stops
                continue
            self.last[name] = line
            if self.readable:
                if not isinstance(fields, dict):
                    fields = {"ts": iso_utc(time.time()), "role": name, "msg": line}
                line = readable(fields, colour=self.colour)
            with self.lock:
                sys.stderr.write(line + "\n")
                sys.stderr.flush()

    def drain(self, *names: str, timeout: float = 5.0) -> None:
        """Wait for the last lines of the named roles (all by default), which exited."""
        for name in names or list(self.readers):
            self.readers[name].join(timeout=timeout)

    def why(self, failed: RoleFailed) -> str:
        """One line: the role, why it did not start and, when it said, the fix."""
        self.drain(failed.role)
        said = self.cannot_start.get(failed.role)
        if said is not None:
            return f"{failed.role} cannot start: {said.get('cause')}; {said.get('fix')}"
        last = self.last.get(failed.role)
        return f"{failed}" + (f" (its last line: {last})" if last else "")
