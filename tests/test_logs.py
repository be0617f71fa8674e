"""Log lines: one JSON object per line whatever the values hold, or one readable line per
event with its fields; JSON unless the logs go to a terminal."""

from __future__ import annotations

import logging
import os
import pty
import socket
import subprocess
import sys
from pathlib import Path

import orjson

from filmstrip.logs import JsonFormatter, ReadableFormatter

ROOT = Path(__file__).resolve().parents[1]


def test_a_value_that_was_not_utf8_is_escaped_not_lost() -> None:
    """aiohttp decodes a request's path with ``surrogateescape``; logging such a path must
    still write its line (JSON cannot carry lone surrogates)."""
    record = logging.LogRecord("filmstrip.api", logging.INFO, __file__, 1, "request", None, None)
    record.path = "/static/\udcff\udcfe.css"
    record.status = 400
    line = orjson.loads(JsonFormatter("api").format(record))
    assert line["path"] == "/static/\\udcff\\udcfe.css"
    assert (line["status"], line["msg"], line["role"]) == (400, "request", "api")


def _request(**extra: object) -> logging.LogRecord:
    record = logging.LogRecord("filmstrip.api", logging.INFO, __file__, 1, "request", None, None)
    record.__dict__.update(extra)
    return record


def test_a_readable_line_keeps_every_field() -> None:
    record = _request(method="POST", path="/v1/photos", status=201, ms=12.3, photo_id="p1",
                      trace_id="0123abcd" * 4, note="two words")  # fmt: skip
    line = ReadableFormatter("api").format(record)
    assert line.endswith(' api    201 POST /v1/photos 12.3 ms photo_id=p1 note="two words"'
                         " trace=0123abcd")  # fmt: skip
    record = logging.LogRecord(
        "filmstrip.worker", logging.WARNING, __file__, 1, "photo %s", ("failed",), None
    )
    record.stages_ms = {"validation": 3}
    line = ReadableFormatter("worker").format(record)
    assert line.endswith(' worker WARNING photo failed stages_ms={"validation":3}')
    assert "\x1b" not in line  # no colour unless asked
    coloured = ReadableFormatter("worker", colour=True).format(record)
    assert "\x1b[35mworker" in coloured and "\x1b[33mWARNING" in coloured


LOG_ONE = (
    "import logging, sys; from filmstrip.logs import setup_logging; "
    "setup_logging('api', json={json}); "
    "logging.getLogger('filmstrip.api').info('request', extra=dict(method='GET', "
    "path='/v1/photos', status=200, ms=1.5))"
)


def _log_one(json: bool | None, *, terminal: bool) -> str:
    """What a process that logs one request writes to its stderr (a pipe or a terminal)."""
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}"}
    argv = [sys.executable, "-c", LOG_ONE.format(json=json)]
    if not terminal:
        return subprocess.run(argv, env=env, capture_output=True, text=True, check=True).stderr
    leader, follower = pty.openpty()
    proc = subprocess.Popen(argv, env=env, stderr=follower)
    os.close(follower)
    out = b""
    with os.fdopen(leader, "rb", buffering=0) as reading:
        while True:
            try:
                chunk = reading.read(4096)
            except OSError:  # EIO: the process is gone
                break
            if not chunk:
                break
            out += chunk
    assert proc.wait(timeout=30) == 0
    return out.decode()


def test_json_unless_the_logs_go_to_a_terminal_or_json_is_off() -> None:
    assert orjson.loads(_log_one(None, terminal=False))["path"] == "/v1/photos"
    on_terminal = _log_one(None, terminal=True)
    assert "\x1b[36mapi" in on_terminal and "200 GET /v1/photos 1.5 ms" in on_terminal
    off = _log_one(False, terminal=False)
    assert "200 GET /v1/photos 1.5 ms" in off and "\x1b" not in off
    assert orjson.loads(_log_one(True, terminal=True))["status"] == 200


def test_a_role_that_cannot_listen_says_why_and_what_to_change(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FILMSTRIP_")}
    env.update(PYTHONPATH=f"{ROOT / 'src'}{os.pathsep}{ROOT}", FILMSTRIP_DATA_DIR=str(tmp_path))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        env["FILMSTRIP_API_PORT"] = str(taken.getsockname()[1])
        argv = [sys.executable, "-m", "filmstrip.services.cli.main", "api"]
        done = subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    said = orjson.loads(done.stderr.splitlines()[-1])
    assert (said["level"], said["msg"]) == ("ERROR", "cannot start")
    assert "is in use" in said["cause"] and "FILMSTRIP_API_PORT" in said["fix"]
