"""The ``filmstrip`` command: settings errors, tokens, and ``dev`` starting and stopping."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from filmstrip.auth import hash_token
from filmstrip.catalog import open_catalog
from filmstrip.settings import Settings
from tests.support.redis_server import env_without_filmstrip, free_port

ROOT = Path(__file__).resolve().parents[2]


def _cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "services.cli.main", *args]


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = env_without_filmstrip()
    env["PYTHONPATH"] = f"{ROOT / 'src'}{os.pathsep}{ROOT}"
    env["FILMSTRIP_DATA_DIR"] = str(tmp_path / "var")
    env.update(extra)
    return env


def test_bad_setting_exits_2_naming_the_variable(tmp_path: Path) -> None:
    out = subprocess.run(
        _cmd("api"), env=_env(tmp_path, FILMSTRIP_API_PORT="http"), capture_output=True,
        text=True, timeout=60, cwd=ROOT,
    )  # fmt: skip
    assert out.returncode == 2
    assert "FILMSTRIP_API_PORT" in out.stderr


def test_every_command_turns_faulthandler_on(tmp_path: Path) -> None:
    # A native crash in a role (a decoder fed a hostile file) must leave its stacks.
    code = (
        "import faulthandler\n"
        "from services.cli.main import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print('faulthandler', faulthandler.is_enabled())"
    )
    env = _env(tmp_path)
    env.pop("PYTHONFAULTHANDLER", None)
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60,
        cwd=ROOT,
    )  # fmt: skip
    assert out.stdout.strip().endswith("faulthandler True"), out.stdout + out.stderr


def test_token_create_and_revoke(tmp_path: Path) -> None:
    env = _env(tmp_path)
    made = subprocess.run(
        _cmd("token", "create", "ci-client"), env=env, capture_output=True, text=True,
        timeout=60, cwd=ROOT, check=True,
    )  # fmt: skip
    token = made.stdout.strip()
    assert token.startswith("fst_")
    db = (tmp_path / "var" / "filmstrip.db").read_bytes()
    assert token.encode() not in db  # only the hash is stored
    revoked = subprocess.run(
        _cmd("token", "revoke", token), env=env, capture_output=True, text=True, timeout=60,
        cwd=ROOT,
    )  # fmt: skip
    assert revoked.returncode == 0
    again = subprocess.run(
        _cmd("token", "revoke", token), env=env, capture_output=True, text=True, timeout=60,
        cwd=ROOT,
    )  # fmt: skip
    assert again.returncode == 1


def _token_create(env: dict[str, str], *args: str) -> tuple[str, str]:
    """``filmstrip token create ARGS``: the token printed and what stderr said."""
    out = subprocess.run(
        _cmd("token", "create", *args), env=env, capture_output=True, text=True, timeout=60,
        cwd=ROOT, check=True,
    )  # fmt: skip
    return out.stdout.strip(), out.stderr


async def _is_admin(tmp_path: Path, token: str) -> bool:
    catalog = await open_catalog(Settings(data_dir=str(tmp_path / "var")))
    try:
        client = await catalog.client_for_token(hash_token(token))
    finally:
        await catalog.close()
    assert client is not None
    return client.is_admin


async def test_token_create_gives_the_role_asked_for_and_says_what_it_did(tmp_path: Path) -> None:
    """The role belongs to the client: ``--admin`` grants it, ``--no-admin`` takes it away,
    neither keeps it; each change (and an admin token made without ``--admin``) is said."""
    env = _env(tmp_path)
    first, said = _token_create(env, "alice")
    assert not await _is_admin(tmp_path, first) and "admin" not in said
    second, said = _token_create(env, "alice", "--admin")
    assert await _is_admin(tmp_path, second), "--admin on an existing client must make it admin"
    assert "alice is now an admin" in said
    assert await _is_admin(tmp_path, first)  # the role is the client's, so every token has it
    third, said = _token_create(env, "alice")
    assert await _is_admin(tmp_path, third)
    assert "alice is an admin; the new token is an admin token" in said
    fourth, said = _token_create(env, "alice", "--no-admin")
    assert not await _is_admin(tmp_path, fourth) and not await _is_admin(tmp_path, second)
    assert "alice is no longer an admin" in said
    _ops, said = _token_create(env, "ops", "--admin")
    assert "created client ops" in said and "as an admin" in said


def _redis_pids_for(data_dir: Path) -> list[int]:
    """redis-server processes working in ``data_dir`` (redis chdirs into its --dir and
    rewrites its command line, so the working directory is what identifies ours)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            comm = (proc / "comm").read_text().strip()
            cwd = os.readlink(proc / "cwd")
        except OSError:
            continue
        if comm.startswith("redis-server") and cwd.startswith(str(data_dir.resolve())):
            pids.append(int(proc.name))
    return pids


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:
            return int(resp.status)
    except Exception:
        return 0


def test_dev_runs_everything_and_ctrl_c_stops_it_all(tmp_path: Path) -> None:
    api_port, bus_port = free_port(), free_port()
    env = _env(tmp_path, FILMSTRIP_API_PORT=str(api_port), FILMSTRIP_BUS_PORT=str(bus_port))
    proc = subprocess.Popen(
        _cmd("dev"), env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        ready = False
        while time.monotonic() < deadline and not ready:
            ready = (
                _get(f"http://127.0.0.1:{api_port}/readyz") == 200
                and _get(f"http://127.0.0.1:{bus_port}/healthz") == 200
            )
            time.sleep(0.3)
        assert ready, "api and bus did not become ready"
        assert _redis_pids_for(tmp_path / "var"), "no private redis-server under the data dir"
        assert (tmp_path / "var" / "filmstrip.db").exists()
        assert (tmp_path / "var" / "dev-token").exists()
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
        out = proc.stdout.read() if proc.stdout else ""
        assert proc.returncode == 0
        assert "demo token" in out and f":{api_port}" in out
        assert _redis_pids_for(tmp_path / "var") == [], "a redis-server was left behind"
        assert (tmp_path / "var" / "redis" / "appendonlydir").exists() or any(
            (tmp_path / "var" / "redis").glob("appendonly*")
        )
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
