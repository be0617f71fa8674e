"""The ``filmstrip`` command: settings errors, tokens, and ``dev`` starting and stopping."""

from __future__ import annotations

import asyncio
import os
import signal
import stat
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import aiohttp
import pyvips

from filmstrip.auth import hash_token
from filmstrip.catalog import open_catalog
from filmstrip.embedded.redis_server import free_port
from filmstrip.embedded.supervisor import env_without_filmstrip
from filmstrip.services.api.tus.protocol import OFFSET_CONTENT_TYPE
from filmstrip.settings import Settings
from tests.support.settings import replace_settings

ROOT = Path(__file__).resolve().parents[2]


def _cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "filmstrip.services.cli.main", *args]


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
        "from filmstrip.services.cli.main import main\n"
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
        _cmd("token", "create", "ci-client", "--create-catalog"), env=env,
        capture_output=True, text=True, timeout=60, cwd=ROOT, check=True,
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
    catalog = await open_catalog(replace_settings(Settings(), data_dir=str(tmp_path / "var")))
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
    first, said = _token_create(env, "alice", "--create-catalog")
    assert not await _is_admin(tmp_path, first) and "admin" not in said.splitlines()[-1]
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


def _readable_by_others(root: Path) -> list[str]:
    """Paths under ``root`` (and it) whose mode gives group or others any access."""
    found = []
    for path in [root, *root.rglob("*")]:
        mode = path.lstat().st_mode
        if not stat.S_ISLNK(mode) and stat.S_IMODE(mode) & 0o077:
            found.append(f"{path.relative_to(root.parent)} {stat.S_IMODE(mode):o}")
    return found


async def _store_a_photo_and_a_partial_upload(api: str, token: str) -> None:
    """A photo processed into derivatives, and a tus upload left half-sent."""
    jpeg = pyvips.Image.xyz(320, 240).cast("uchar").jpegsave_buffer(Q=90)
    tus = {"Tus-Resumable": "1.0.0"}
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as http:
        form = aiohttp.FormData()
        form.add_field("file", jpeg, filename="a.jpg", content_type="image/jpeg")
        async with http.post(f"{api}/v1/photos", data=form) as resp:
            assert resp.status == 201, await resp.text()
            photo_id = (await resp.json())["photo_id"]
        async with http.post(
            f"{api}/v1/uploads", headers={**tus, "Upload-Length": str(len(jpeg))}
        ) as resp:
            assert resp.status == 201, await resp.text()
            location = resp.headers["Location"]
        async with http.patch(
            api + location,
            data=jpeg[: len(jpeg) // 2],
            headers={**tus, "Upload-Offset": "0", "Content-Type": OFFSET_CONTENT_TYPE},
        ) as resp:
            assert resp.status == 204, await resp.text()
        deadline = time.monotonic() + 60
        while True:
            async with http.get(f"{api}/v1/photos/{photo_id}") as resp:
                if (await resp.json())["status"] == "completed":
                    return
            assert time.monotonic() < deadline, "the photo was not processed within 60 s"
            await asyncio.sleep(0.2)


async def _old_catalog(data: Path) -> None:
    catalog = await open_catalog(replace_settings(Settings(), data_dir=str(data)))
    await catalog.create_client("c1", "old", is_admin=False)
    await catalog.close()


def test_files_an_older_version_left_open_are_made_private_at_start(tmp_path: Path) -> None:
    """The catalog's files lose group and other access; each local store's top directory
    too (nothing below it is then reachable); a shared sticky directory is left alone."""
    data = tmp_path / "var"
    shared = tmp_path / "shared-tmp"
    old_umask = os.umask(0o022)  # how older versions created everything
    try:
        asyncio.run(_old_catalog(data))
        for store in ("blobs/originals", "uploads/abc", "cache/originals", "redis"):
            (data / store).mkdir(parents=True)
        (data / "blobs" / "originals" / "p1").write_bytes(b"old photo")
        shared.mkdir()
        shared.chmod(0o1777)
    finally:
        os.umask(old_umask)
    catalog_files = [p for p in data.iterdir() if p.name.startswith("filmstrip.db")]
    assert any(p.stat().st_mode & 0o044 for p in catalog_files)  # as older versions left it
    _token, said = _token_create(_env(tmp_path), "new")
    assert "owner only" in said
    for path in catalog_files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    for store in ("blobs", "uploads", "cache/originals", "redis"):
        assert stat.S_IMODE((data / store).stat().st_mode) == 0o700, store
    _token_create(_env(tmp_path, FILMSTRIP_TUS_DIR=str(shared)), "newer")
    assert stat.S_IMODE(shared.stat().st_mode) == 0o1777


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
        token = (tmp_path / "var" / "dev-token").read_text().strip()
        asyncio.run(_store_a_photo_and_a_partial_upload(f"http://127.0.0.1:{api_port}", token))
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
        out = proc.stdout.read() if proc.stdout else ""
        assert proc.returncode == 0
        assert "demo token" in out and f":{api_port}" in out
        assert _redis_pids_for(tmp_path / "var") == [], "a redis-server was left behind"
        assert (tmp_path / "var" / "redis" / "appendonlydir").exists() or any(
            (tmp_path / "var" / "redis").glob("appendonly*")
        )
        # Catalog, blobs, the partial upload, Redis's files: nobody else may read them.
        assert _readable_by_others(tmp_path / "var") == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
