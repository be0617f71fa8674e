"""``filmstrip upload``'s own rules, run in this process against a real api with no worker
(photos stay queued): what it refuses before sending anything, which files it finds, a
refused upload failing the run, a resume point left for bytes the server has being
dropped, duplicates still being processed waited for, a photo deleted while it is waited
for, and ``--no-wait`` not waiting."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import aiohttp
import orjson
import pytest
import pyvips
import redis.asyncio as aioredis

from bench.redis_server import RedisServer
from filmstrip.client import ApiClient, ResumeStore, inspect_file, upload_file
from filmstrip.embedded.redis_server import free_port
from filmstrip.embedded.supervisor import env_without_filmstrip
from filmstrip.services.cli import upload
from tests.api.conftest import api_settings, running_api
from tests.support.stack import ROOT


def _jpeg(path: Path, size: int = 120) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = pyvips.Image.gaussnoise(size, size, sigma=60).cast("uchar")
    path.write_bytes(image.jpegsave_buffer(Q=90))
    return path


def test_files_are_found_in_order_once_without_hidden_ones(tmp_path: Path) -> None:
    for name in ("b/2.jpg", "b/1.jpg", "a.jpg", ".git/x.jpg", "b/.hidden.jpg", "c/.cache/y.jpg"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    found, missing = upload.find_files([tmp_path, tmp_path / "a.jpg", tmp_path / "nope.jpg"])
    assert [p.relative_to(tmp_path).as_posix() for p in found] == ["a.jpg", "b/1.jpg", "b/2.jpg"]
    assert missing == [str(tmp_path / "nope.jpg")]


async def test_a_run_without_a_token_or_with_a_missing_path_sends_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    photo = _jpeg(tmp_path / "a.jpg")
    nobody = f"http://127.0.0.1:{free_port()}"
    assert await upload.run(upload.Options(paths=[photo], api_url=nobody, token="")) == 2
    assert "give a token" in capsys.readouterr().err
    gone = tmp_path / "gone.jpg"
    options = upload.Options(paths=[photo, gone], api_url=nobody, token="t")
    assert await upload.run(options) == 2
    assert f"no such file or folder: {gone}" in capsys.readouterr().err


async def test_an_api_nobody_answers_for_fails_the_run_with_one_line_saying_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    nobody = f"http://127.0.0.1:{free_port()}"
    options = upload.Options(paths=[_jpeg(tmp_path / "a.jpg")], api_url=nobody, token="t")
    assert await upload.run(options) == 1
    # Not a Python repr (ClientConnectorError(ConnectionKey(…))): the address, why, and
    # what to check.
    err = capsys.readouterr().err
    said = [line for line in err.splitlines() if "hashing" not in line]  # (its bar)
    assert said == [
        f"filmstrip upload: {nobody}: cannot connect: Connection refused; check that the api "
        "runs there, or name it with --api or FILMSTRIP_API_URL"
    ], err


async def test_an_empty_file_is_reported_as_empty_and_not_sent(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "notes.jpg").write_bytes(b"not a photo")
    nobody = f"http://127.0.0.1:{free_port()}"  # nothing is sent, so nothing is asked
    options = upload.Options(paths=[tmp_path], api_url=nobody, token="t", json=True)
    assert await upload.run(options) == 1
    reports = {Path(r["path"]).name: r for r in orjson.loads(capsys.readouterr().out)}
    assert reports["empty.jpg"]["reason"] == "empty file: not sent"
    assert reports["notes.jpg"]["reason"] == "not a photo (by its bytes): not sent"
    assert {r["outcome"] for r in reports.values()} == {"failed"}


async def test_a_refused_upload_fails_the_run_naming_why(
    redis_server: RedisServer,
    redis: aioredis.Redis,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    photo = _jpeg(tmp_path / "in" / "a.jpg")
    settings = api_settings(tmp_path, redis_server.url)
    async with running_api(settings, "jo") as api:
        options = upload.Options(
            paths=[photo], api_url=api.url, token=api.token, wait=False, json=True, priority=2,
            state_dir=tmp_path / "state",
        )  # fmt: skip
        assert await asyncio.wait_for(upload.run(options), 60) == 1
    out = capsys.readouterr()
    [report] = orjson.loads(out.out)
    assert report["outcome"] == "failed" and "priority_not_allowed" in report["reason"]
    assert f"failed: {photo}: " in out.err


async def test_bytes_the_server_has_are_not_sent_and_their_resume_point_goes(
    redis_server: RedisServer,
    redis: aioredis.Redis,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    photo = await asyncio.to_thread(inspect_file, _jpeg(tmp_path / "in" / "a.jpg"))
    assert photo.sha256 is not None
    state = tmp_path / "state"
    settings = api_settings(tmp_path, redis_server.url)
    async with running_api(settings, "kim") as api, ApiClient(api.url, api.token) as client:
        sent = await upload_file(client, photo)
        # A run cut after its last byte went keeps the point of an upload now finished.
        await ResumeStore(state).put(client.url, photo.sha256, f"{api.url}/v1/uploads/{'1' * 32}")
        options = upload.Options(
            paths=[photo.path], api_url=api.url, token=api.token, wait=False, json=True,
            state_dir=state,
        )  # fmt: skip
        assert await asyncio.wait_for(upload.run(options), 60) == 0
    [report] = orjson.loads(capsys.readouterr().out)
    assert (report["outcome"], report["photo_id"]) == ("duplicate", sent.photo_id)
    assert report["reason"] == "already on the server"
    assert list(state.iterdir()) == []


async def test_a_duplicate_still_being_processed_is_waited_for(
    redis_server: RedisServer, redis: aioredis.Redis, tmp_path: Path
) -> None:
    photo = await asyncio.to_thread(inspect_file, _jpeg(tmp_path / "a.jpg"))
    settings = api_settings(tmp_path, redis_server.url)
    async with running_api(settings, "lee") as api, ApiClient(api.url, api.token) as client:
        queued = await upload_file(client, photo)  # no worker: it stays queued
        options = upload.Options(paths=[photo.path], api_url=api.url, token=api.token)
        state = upload._Run(options, {photo.path: upload.FileReport(path=str(photo.path))})
        report = state.reports[photo.path]
        report.outcome, report.photo_id, report.reason = (
            "duplicate",
            queued.photo_id,
            upload._ON_SERVER,
        )
        assert await upload._earlier_outcomes(client, state) == [queued.photo_id]
    assert report.processing is None


async def test_a_photo_deleted_while_waited_for_ends_the_wait_and_is_no_failure(
    redis_server: RedisServer,
    redis: aioredis.Redis,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # No bus here: the wait asks the api after a quiet spell, soon.
    monkeypatch.setattr(upload, "_QUIET_S", 0.2)
    photo = _jpeg(tmp_path / "a.jpg")
    settings = api_settings(tmp_path, redis_server.url)
    async with (
        running_api(settings, "nia") as api,
        aiohttp.ClientSession(headers={"Authorization": f"Bearer {api.token}"}) as http,
    ):
        options = upload.Options(
            paths=[photo], api_url=api.url, token=api.token, json=True, state_dir=tmp_path / "s"
        )
        run = asyncio.create_task(upload.run(options))
        try:
            photo_id = await _first_photo(http, api.url)  # no worker: it stays queued
            async with http.delete(f"{api.url}/v1/photos/{photo_id}") as resp:
                assert resp.status == 204
            assert await asyncio.wait_for(asyncio.shield(run), 30) == 0
        finally:
            run.cancel()
    [report] = orjson.loads(capsys.readouterr().out)
    assert (report["outcome"], report["photo_id"]) == ("uploaded", photo_id)
    assert (report["processing"], report["processing_via"]) == ("deleted", "api")


async def _first_photo(http: aiohttp.ClientSession, api_url: str) -> str:
    """The id of the client's first photo, once there is one."""
    for _ in range(300):
        async with http.get(f"{api_url}/v1/photos?limit=1") as resp:
            items = (await resp.json())["items"]
        if items:
            return str(items[0]["photo_id"])
        await asyncio.sleep(0.1)
    raise AssertionError("the upload never arrived")


async def test_no_wait_leaves_once_the_photos_are_sent(
    redis_server: RedisServer, redis: aioredis.Redis, tmp_path: Path
) -> None:
    photo = _jpeg(tmp_path / "a.jpg")
    settings = api_settings(tmp_path, redis_server.url)
    async with running_api(settings, "max") as api:
        env = env_without_filmstrip()
        env.update(
            PYTHONPATH=f"{ROOT / 'src'}{os.pathsep}{ROOT}", FILMSTRIP_API_URL=api.url,
            FILMSTRIP_TOKEN=api.token,
        )  # fmt: skip
        argv = ["upload", "--no-wait", "--json", "--state-dir", str(tmp_path / "s"), str(photo)]
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "filmstrip.services.cli.main", *argv, env=env, cwd=ROOT,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            out, err = await asyncio.wait_for(proc.communicate(), 60)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    assert proc.returncode == 0, err
    [report] = orjson.loads(out)
    assert (report["outcome"], report["processing"]) == ("uploaded", None)
