"""``filmstrip dev`` tells the truth (real processes): it says it is running once every role
answers its health check, stops with one line naming a role that cannot start, starts a
role that dies later again while the others run on, and on a terminal shows each event
on one readable line."""

from __future__ import annotations

import asyncio
import os
import pty
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import pytest

from filmstrip.auth import hash_token
from filmstrip.catalog import open_catalog
from filmstrip.embedded.redis_server import RedisServer, free_port
from filmstrip.embedded.supervisor import Role, RoleFailed, Supervisor
from filmstrip.services.cli.dev import (
    REDIS_WAIT_S,
    _dev_token,
    _health,
    _ports_taken,
    _redis_silent,
)
from filmstrip.settings import load_settings
from tests.cli.test_cli import _cmd, _env, _get, _redis_pids_for

ROOT = Path(__file__).resolve().parents[2]
BANNER = "Filmstrip is running"


@dataclass
class Dev:
    proc: subprocess.Popen[bytes]
    data: Path
    api: str
    bus: str
    worker: str
    lines: queue.Queue[str] = field(default_factory=queue.Queue)  # stdout and stderr
    seen: list[str] = field(default_factory=list)
    readers: list[threading.Thread] = field(default_factory=list)

    def wait_for(self, text: str, timeout: float = 90) -> str:
        """The first line, from now on, that holds ``text``."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                seen = "".join(self.seen)
                raise AssertionError(f"no line with {text!r}; saw:\n{seen}") from None
            self.seen.append(line)
            if text in line:
                return line

    def rest(self) -> list[str]:
        """Every line after the last one waited for, once it has exited."""
        for reader in self.readers:
            reader.join(timeout=30)
        out = []
        while not self.lines.empty():
            out.append(self.lines.get())
        self.seen += out
        return out

    def roles(self) -> dict[str, int]:
        """Its roles' pids by role (its children that run ``filmstrip <role>``)."""
        found = {}
        for task in Path(f"/proc/{self.proc.pid}/task").iterdir():
            for pid in (task / "children").read_text().split():
                try:
                    argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
                except OSError:
                    continue
                if b"filmstrip.services.cli.main" in argv:
                    found[argv[argv.index(b"filmstrip.services.cli.main") + 1].decode()] = int(pid)
        return found


def _read(stream: IO[bytes], into: queue.Queue[str]) -> None:
    try:
        for raw in iter(stream.readline, b""):
            into.put(raw.decode(errors="replace"))
    except OSError:  # a pty's end once the process is gone
        pass


StartDev = Callable[..., Dev]


@pytest.fixture
def start_dev(tmp_path: Path) -> Iterator[StartDev]:
    """Starts ``filmstrip dev`` (its output on pipes, or on a terminal), stopped after."""
    started: list[Dev] = []

    def start(terminal: bool = False, **settings: str) -> Dev:
        ports = {k: str(free_port()) for k in ("API", "BUS", "WORKER_METRICS")}
        ports = {k: settings.get(f"FILMSTRIP_{k}_PORT", v) for k, v in ports.items()}
        env = _env(tmp_path, **{f"FILMSTRIP_{k}_PORT": v for k, v in ports.items()})
        env.update(settings)  # FILMSTRIP_DATA_DIR too: another folder than tmp_path/var
        if terminal:
            leader, follower = pty.openpty()
            proc = subprocess.Popen(_cmd("dev"), env=env, cwd=ROOT, stdout=follower,
                                    stderr=follower, stdin=subprocess.DEVNULL)  # fmt: skip
            os.close(follower)
            streams: list[IO[bytes]] = [os.fdopen(leader, "rb", buffering=0)]
        else:
            proc = subprocess.Popen(_cmd("dev"), env=env, cwd=ROOT, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)  # fmt: skip
            streams = [s for s in (proc.stdout, proc.stderr) if s is not None]
        dev = Dev(
            proc, Path(env["FILMSTRIP_DATA_DIR"]), f"http://127.0.0.1:{ports['API']}",
            f"http://127.0.0.1:{ports['BUS']}", f"http://127.0.0.1:{ports['WORKER_METRICS']}",
        )  # fmt: skip
        for stream in streams:
            reader = threading.Thread(target=_read, args=(stream, dev.lines), daemon=True)
            reader.start()
            dev.readers.append(reader)
        started.append(dev)
        return dev

    yield start
    for dev in started:
        if dev.proc.poll() is None:
            dev.proc.send_signal(signal.SIGINT)
            try:
                dev.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                dev.proc.kill()
                dev.proc.wait()


def test_it_says_it_is_running_once_every_role_answers_its_health_check(
    start_dev: StartDev,
) -> None:
    dev = start_dev()
    dev.wait_for(BANNER)
    # At once, no retry: each answered before the banner.
    assert _get(f"{dev.api}/readyz") == 200
    assert _get(f"{dev.bus}/healthz") == 200
    assert _get(f"{dev.worker}/metrics") == 200


@pytest.mark.parametrize(
    ("role", "settings", "cause", "fix"),
    [
        ("api", {}, "is in use", "set FILMSTRIP_API_PORT"),
        (
            "bus",
            {"FILMSTRIP_BUS_HOST": "192.0.2.1", "FILMSTRIP_LOG_JSON": "false"},
            "192.0.2.1 is not an address of this machine",
            "set FILMSTRIP_BUS_HOST",
        ),
    ],
)
def test_a_role_that_cannot_start_stops_dev_with_one_line_saying_why(
    start_dev: StartDev, role: str, settings: dict[str, str], cause: str, fix: str
) -> None:
    with socket.socket() as taken:
        if role == "api":  # something else listens on the api's port
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            settings = {**settings, "FILMSTRIP_API_PORT": str(taken.getsockname()[1])}
        dev = start_dev(**settings)
        assert dev.proc.wait(timeout=90) == 1
    output = dev.rest()
    text = "".join(output)
    assert BANNER not in text
    assert "Traceback" not in text
    said = [line for line in output if "cannot start" in line]
    assert len(said) == 1, text
    assert f"{role} cannot start: " in said[0], said[0]
    assert cause in said[0] and fix in said[0], said[0]
    assert said[0] == output[-1]  # the last word, after the others stopped
    assert _redis_pids_for(dev.data) == [], "a redis-server was left behind"


def test_another_instance_on_its_port_is_not_taken_for_its_own_role(
    start_dev: StartDev, tmp_path: Path
) -> None:
    # Another Filmstrip answers 200 on /readyz there: dev must not say it is running.
    first = start_dev()
    first.wait_for(BANNER)
    port = first.api.rsplit(":", 1)[1]
    second = start_dev(FILMSTRIP_DATA_DIR=str(tmp_path / "var2"), FILMSTRIP_API_PORT=port)
    assert second.proc.wait(timeout=60) == 1
    output = second.rest()
    text = "".join(output)
    assert BANNER not in text and "Traceback" not in text
    said = [line for line in output if "cannot start" in line]
    assert len(said) == 1 and said[0] == output[-1], text
    assert "api cannot start: " in said[0] and f"port {port} on 127.0.0.1 is in use" in said[0]
    assert "set FILMSTRIP_API_PORT" in said[0], said[0]
    assert _redis_pids_for(tmp_path / "var2") == [], "a redis-server was left behind"
    assert _get(f"{first.api}/readyz") == 200 and first.proc.poll() is None
    # Had the port been free at its check and taken just after, the health answer is still
    # not its role's: one that does not carry the identity dev gave the role is not counted.
    role = Role(
        "api", [sys.executable, "-c", "import time; time.sleep(2); raise SystemExit(2)"],
        dict(os.environ), f"{first.api}/readyz", identity="not-the-first-dev",
    )  # fmt: skip
    supervisor = Supervisor([role])
    supervisor.start()
    try:
        with pytest.raises(RoleFailed, match="exited with 2 before it was ready"):
            supervisor.wait_ready(timeout=30)
    finally:
        supervisor.stop(timeout=5)


def test_a_second_dev_on_the_same_data_dir_stops_at_once_naming_the_first(
    start_dev: StartDev,
) -> None:
    first = start_dev()
    first.wait_for(BANNER)
    redis = _redis_pids_for(first.data)
    assert len(redis) == 1
    second = start_dev()  # other ports, the same data dir
    try:
        code = second.proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        second.proc.send_signal(signal.SIGINT)
        second.proc.wait(timeout=60)
        ran = "".join(second.rest())
        raise AssertionError(f"a second dev ran on the data dir:\n{ran}") from None
    output = second.rest()
    text = "".join(output)
    assert code == 1, text
    assert BANNER not in text and "Traceback" not in text
    assert len(output) == 1, text  # one line, and nothing started
    assert f"another filmstrip dev (pid {first.proc.pid})" in output[0], output[0]
    assert str(first.data.resolve()) in output[0] and "FILMSTRIP_DATA_DIR" in output[0]
    assert _redis_pids_for(first.data) == redis, "a second redis-server on the same files"
    assert _get(f"{second.api}/readyz") == 0, "a second api started"
    assert _get(f"{first.api}/readyz") == 200 and first.proc.poll() is None


def test_a_port_taken_is_named_with_its_role_and_setting_before_anything_starts() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings = load_settings(
            {
                "FILMSTRIP_API_PORT": str(free_port()),
                "FILMSTRIP_BUS_PORT": str(free_port()),
                "FILMSTRIP_WORKER_METRICS_PORT": str(port),
            }
        )
        said = _ports_taken(settings)
    assert said == (
        f"worker cannot start: port {port} on 127.0.0.1 is in use; set "
        "FILMSTRIP_WORKER_METRICS_PORT to a free port or stop what listens there"
    )
    assert _ports_taken(settings) is None  # let go: free again


def test_a_role_that_dies_later_starts_again_while_the_others_run_on(
    start_dev: StartDev,
) -> None:
    dev = start_dev()
    dev.wait_for(BANNER)
    before = dev.roles()
    assert set(before) == {"api", "worker", "bus"}
    os.kill(before["worker"], signal.SIGKILL)
    dev.wait_for("worker exited with -9; starting it again in 0.5 s")
    dev.wait_for("worker started again")
    deadline = time.monotonic() + 60
    while _get(f"{dev.worker}/metrics") != 200:
        assert time.monotonic() < deadline, "the worker did not come back"
        time.sleep(0.2)
    after = dev.roles()
    assert after["worker"] != before["worker"]
    assert (after["api"], after["bus"]) == (before["api"], before["bus"])
    assert dev.proc.poll() is None
    assert _get(f"{dev.api}/readyz") == 200 and _get(f"{dev.bus}/healthz") == 200


def test_on_a_terminal_each_event_is_one_readable_line_with_its_fields(
    start_dev: StartDev, corpus: Path
) -> None:
    dev = start_dev(terminal=True)
    dev.wait_for(BANNER)
    token = (dev.data / "dev-token").read_text().strip()
    auth = {"Authorization": f"Bearer {token}"}
    photo = (corpus / "real" / "Canon_PowerShot_A85.jpg").read_bytes()
    boundary = "filmstripboundary"
    body = (
        (
            f"--{boundary}\r\nContent-Disposition: form-data; name=file; filename=a.jpg\r\n"
            "Content-Type: image/jpeg\r\n\r\n"
        ).encode()
        + photo
        + f"\r\n--{boundary}--\r\n".encode()
    )
    ctype = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    _send("POST", f"{dev.api}/v1/photos", body, {**auth, **ctype})
    line = dev.wait_for("201 POST /v1/photos")
    assert "\x1b[36mapi" in line  # the role's name, coloured
    assert " ms trace=" in line and "{" not in line
    done = dev.wait_for("photo completed")
    assert "\x1b[35mworker" in done and "photo_id=" in done and "stages_ms=" in done
    # A tus upload: its chunk (PATCH) is logged at DEBUG, so not shown.
    tus = {**auth, "Tus-Resumable": "1.0.0"}
    created = _send("POST", f"{dev.api}/v1/uploads", b"", {**tus, "Upload-Length": "10"})
    patch = {**tus, "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"}
    _send("PATCH", f"{dev.api}{created}", b"abc", patch)
    _send("GET", f"{dev.api}/healthz", b"", {})
    dev.wait_for("201 POST /v1/uploads")
    dev.wait_for("200 GET /healthz")  # the api logs in order: a PATCH line would be above
    assert not any("PATCH" in line for line in dev.seen)
    assert not any(line.startswith('{"ts"') for line in dev.seen)


def _send(method: str, url: str, body: bytes, headers: dict[str, str]) -> str:
    """Send a request; its ``Location`` header (or "")."""
    request = urllib.request.Request(url, data=body or None, headers=headers, method=method)
    with urllib.request.urlopen(request, timeout=30) as resp:
        assert resp.status < 300, resp.status
        return str(resp.headers.get("Location", ""))


if sys.platform != "linux":  # /proc and ptys
    pytestmark = pytest.mark.skip("Linux only")


def test_a_given_redis_that_does_not_answer_stops_dev_with_one_line_naming_it(
    start_dev: StartDev,
) -> None:
    url = f"redis://:s3cret@127.0.0.1:{free_port()}/0"  # nothing listens there
    started = time.monotonic()
    dev = start_dev(FILMSTRIP_REDIS_URL=url)
    assert dev.proc.wait(timeout=60) == 1
    output = dev.rest()
    text = "".join(output)
    assert time.monotonic() - started < 30  # not the roles' minute of retries
    assert BANNER not in text and "Traceback" not in text
    last = output[-1]
    assert "does not answer" in last and "FILMSTRIP_REDIS_URL" in last, text
    assert url.replace(":s3cret", "") in last or "127.0.0.1" in last, last
    assert "s3cret" not in text
    assert _redis_pids_for(dev.data) == [], "dev started a redis-server of its own"


def test_the_health_urls_reach_roles_bound_to_every_interface() -> None:
    s = load_settings(
        {
            "FILMSTRIP_API_HOST": "0.0.0.0",
            "FILMSTRIP_BUS_HOST": "::",
            "FILMSTRIP_WORKER_METRICS_PORT": "0",
        }
    )
    assert _health("api", s) == f"http://127.0.0.1:{s.api.port}/readyz"
    assert _health("bus", s) == f"http://[::1]:{s.bus.port}/healthz"
    assert _health("worker", s) is None  # no metrics server: running is enough


async def test_the_demo_token_is_kept_until_it_stops_working(tmp_path: Path) -> None:
    settings = load_settings({"FILMSTRIP_DATA_DIR": str(tmp_path)})
    first = await _dev_token(settings)
    assert await _dev_token(settings) == first  # the banner shows the same one each run
    assert (tmp_path / "dev-token").read_text() == first + "\n"
    catalog = await open_catalog(settings)
    try:
        await catalog.revoke_token(hash_token(first))
    finally:
        await catalog.close()
    again = await _dev_token(settings)
    assert again != first and (tmp_path / "dev-token").read_text() == again + "\n"


async def test_a_given_redis_still_starting_is_waited_for(tmp_path: Path) -> None:
    redis = RedisServer(tmp_path / "redis")
    settings = load_settings({"FILMSTRIP_REDIS_URL": redis.url})
    loop = asyncio.get_running_loop()
    starting = loop.call_later(1.0, redis.start)  # a moment after dev first asks
    try:
        assert await _redis_silent(settings, within_s=REDIS_WAIT_S) is None
    finally:
        starting.cancel()
        redis.stop()
