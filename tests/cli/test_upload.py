"""``filmstrip upload`` against the three roles running as processes: a folder goes in and
is followed until processed, a second run sends nothing, a file that is not a photo is
named and makes the exit status 1, and a large upload interrupted half-way is finished by
the next run from where the server's bytes end."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import pyvips

from bench.tcp_proxy import TcpProxy
from filmstrip.embedded.supervisor import env_without_filmstrip
from tests.support.stack import ROOT, Stack, start_stack

PHOTOS = ["real/Canon_EOS_7D.jpg", "real/Nikon_D5000.jpg", "real/Landscape_3.jpg"]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    running = start_stack(tmp_path_factory.mktemp("upload"), job_backoff_ms="200")
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
async def http(stack: Stack) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {stack.token}"}) as s:
        yield s


def _env(stack: Stack, api: str | None = None) -> dict[str, str]:
    env = env_without_filmstrip()
    env.update(
        PYTHONPATH=f"{ROOT / 'src'}{os.pathsep}{ROOT}",
        FILMSTRIP_API_URL=api or stack.api,
        FILMSTRIP_TOKEN=stack.token,
        COLUMNS="200",
    )
    return env


def _argv(state: Path, *args: str) -> list[str]:
    return [
        sys.executable, "-m", "filmstrip.services.cli.main", "upload", "--json", "--state-dir",
        str(state), *args,
    ]  # fmt: skip


async def _upload(
    stack: Stack, state: Path, *args: str, api: str | None = None
) -> tuple[int, dict[str, dict[str, Any]], str]:
    """Run the command; its exit status, each file's report by name, and its stderr."""
    proc = await asyncio.create_subprocess_exec(
        *_argv(state, *args), env=_env(stack, api), cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), timeout=180)
    assert proc.returncode is not None
    reports = {Path(r["path"]).name: r for r in orjson.loads(out)} if out.strip() else {}
    return proc.returncode, reports, err.decode()


def _upload_requests(stack: Stack) -> int:
    """Requests that carried a file, as the api logged them."""
    log = stack.log("web")
    return log.count('"method":"POST","path":"/v1/photos"') + log.count(
        '"method":"POST","path":"/v1/uploads"'
    )


async def _photo_count(http: aiohttp.ClientSession, stack: Stack) -> int:
    async with http.get(f"{stack.api}/v1/photos?limit=200") as resp:
        return len((await resp.json())["items"])


async def test_a_folder_goes_in_once_and_a_text_file_fails_the_run(
    stack: Stack, http: aiohttp.ClientSession, corpus: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "trip"
    (folder / "day2").mkdir(parents=True)
    for i, name in enumerate(PHOTOS):
        shutil.copy(corpus / name, (folder if i else folder / "day2") / Path(name).name)
    shutil.copy(corpus / PHOTOS[1], folder / "day2" / "copy-of-nikon.jpg")
    (folder / "notes.txt").write_text("not a photo, though named like one could be\n")
    (folder / ".hidden.jpg").write_bytes((corpus / PHOTOS[0]).read_bytes())
    state = tmp_path / "state"
    before = await _photo_count(http, stack)

    status, reports, err = await _upload(stack, state, str(folder), "--session", "new")
    assert status == 1, err
    assert set(reports) == {
        "Canon_EOS_7D.jpg", "Nikon_D5000.jpg", "Landscape_3.jpg", "copy-of-nikon.jpg",
        "notes.txt",
    }  # fmt: skip
    for name in ("Canon_EOS_7D.jpg", "Nikon_D5000.jpg", "Landscape_3.jpg"):
        assert reports[name]["outcome"] == "uploaded", reports[name]
        assert reports[name]["processing"] == "completed", reports[name]
        assert reports[name]["processing_via"] == "bus", reports[name]  # followed live
    copy = reports["copy-of-nikon.jpg"]
    assert copy["outcome"] == "duplicate"
    assert copy["photo_id"] == reports["Nikon_D5000.jpg"]["photo_id"]
    assert reports["notes.txt"]["outcome"] == "failed"
    assert "not a photo" in reports["notes.txt"]["reason"]
    assert f"failed: {folder / 'notes.txt'}: not a photo" in err
    assert await _photo_count(http, stack) == before + 3
    session_id = re.search(r"session (\S+)", err)
    assert session_id, err
    async with http.get(f"{stack.api}/v1/sessions/{session_id[1]}") as resp:
        session = await resp.json()
    assert sorted(session["photo_ids"]) == sorted(
        reports[n]["photo_id"] for n in ("Canon_EOS_7D.jpg", "Nikon_D5000.jpg", "Landscape_3.jpg")
    )

    # Again: the server has every photo, so nothing is sent; the text file still fails.
    sent = _upload_requests(stack)
    assert sent >= 3  # the count sees the first run's uploads
    status, again, err = await _upload(stack, state, str(folder))
    assert _upload_requests(stack) == sent, "a photo the server has was sent again"
    assert status == 1
    assert {n: r["outcome"] for n, r in again.items() if n != "notes.txt"} == dict.fromkeys(
        ("Canon_EOS_7D.jpg", "Nikon_D5000.jpg", "Landscape_3.jpg", "copy-of-nikon.jpg"),
        "duplicate",
    )
    assert again["Canon_EOS_7D.jpg"]["photo_id"] == reports["Canon_EOS_7D.jpg"]["photo_id"]
    for name, report in again.items():  # how the server's copies went, asked of the api
        if name != "notes.txt":
            assert (report["processing"], report["processing_via"]) == ("completed", "api")
    assert await _photo_count(http, stack) == before + 3
    # Without it, a run of photos the server has is a success.
    status, _, err = await _upload(stack, state, str(folder / "day2"))
    assert status == 0, err


async def test_a_file_whose_copy_on_the_server_failed_fails_the_run_again(
    stack: Stack, corpus: Path, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.jpg"  # a JPEG by its bytes that no decoder can read
    broken.write_bytes((corpus / "bad/missing-sos.jpg").read_bytes())
    status, reports, err = await _upload(stack, tmp_path / "state", str(broken))
    assert status == 1, err
    assert reports["broken.jpg"]["processing"] == "failed", reports
    why = reports["broken.jpg"]["reason"].removeprefix("processing failed: ")

    status, again, err = await _upload(stack, tmp_path / "state", str(broken))
    assert status == 1, err
    report = again["broken.jpg"]
    assert (report["outcome"], report["processing"]) == ("duplicate", "failed"), report
    assert report["reason"] == f"already on the server, where processing failed: {why}"
    assert f"failed: {broken}: already on the server, where processing failed" in err


async def test_the_run_chooses_the_pipeline_and_priority(
    stack: Stack, http: aiohttp.ClientSession, corpus: Path, tmp_path: Path
) -> None:
    photo = tmp_path / "Été.jpg"
    photo.write_bytes((corpus / "real/Olympus_PEN_E-P3.jpg").read_bytes())
    args = ("--pipeline", "quick_processing", "--priority", "9", str(photo))
    status, reports, err = await _upload(stack, tmp_path / "state", *args)
    assert status == 0, err
    report = reports["Été.jpg"]
    assert report["processing"] == "completed", report
    async with http.get(f"{stack.api}/v1/photos/{report['photo_id']}") as resp:
        body = await resp.json()
    assert (body["pipeline"], body["priority"], body["filename"]) == (
        "quick_processing", 9, "Été.jpg",
    )  # fmt: skip
    assert {d["name"] for d in body["derivatives"]} == {"thumbnail", "preview"}


async def test_a_large_upload_interrupted_half_way_is_finished_by_the_next_run(
    stack: Stack, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    big = tmp_path / "big.jpg"
    noise = pyvips.Image.gaussnoise(3000, 3000, sigma=80).cast("uchar").bandjoin([0, 0])
    big.write_bytes(noise.jpegsave_buffer(Q=100))
    size = big.stat().st_size
    assert size > 3 * 8 * 1024 * 1024, size  # several tus chunks
    state = tmp_path / "state"
    port = int(stack.api.rsplit(":", 1)[1])
    slow = TcpProxy("127.0.0.1", port, upload_bytes_per_s=4 * 1024 * 1024)
    await slow.start()
    proc = await asyncio.create_subprocess_exec(
        *_argv(state, str(big)), env=_env(stack, slow.url), cwd=ROOT,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        # Ctrl-C once the server holds its first chunk (nothing is written on the way out:
        # what the next run needs was kept before the first byte went).
        url, offset = await _partial_upload(http, stack, state)
        proc.send_signal(signal.SIGINT)
        _, err = await asyncio.wait_for(proc.communicate(), timeout=30)
        assert proc.returncode == 130, err
        assert b"run the same command again" in err
    finally:
        if proc.returncode is None:
            proc.kill()
        await slow.close()
    async with http.head(url, headers={"Tus-Resumable": "1.0.0"}) as resp:
        kept = int(resp.headers["Upload-Offset"])
    assert 0 < offset <= kept < size, (offset, kept, size)

    # The same command against the same api URL (now at full speed).
    fast = TcpProxy("127.0.0.1", port, port=slow.port)
    await fast.start()
    try:
        status, reports, err = await _upload(stack, state, str(big), api=fast.url)
    finally:
        await fast.close()
    assert status == 0, err
    report = reports["big.jpg"]
    assert report["outcome"] == "uploaded" and report["processing"] == "completed"
    assert report["resumed_at"] == kept  # only the rest was sent
    async with http.get(url) as resp:  # the first run's upload is the one that finished
        upload = await resp.json()
    assert upload["state"] == "done" and upload["photo_id"] == report["photo_id"]
    assert list(state.iterdir()) == []  # nothing left to resume


async def _partial_upload(
    http: aiohttp.ClientSession, stack: Stack, state: Path
) -> tuple[str, int]:
    """The upload the running command kept (its URL on the api itself, not through the
    proxy), once the server has some of its bytes."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        points = list(state.glob("*.json")) if state.exists() else []
        if points:
            kept = orjson.loads(points[0].read_bytes())["upload_url"]
            url = stack.api + "/v1/uploads/" + kept.rsplit("/", 1)[1]
            async with http.head(url, headers={"Tus-Resumable": "1.0.0"}) as resp:
                offset = int(resp.headers.get("Upload-Offset", "0"))
            if offset > 0:
                return url, offset
        await asyncio.sleep(0.05)
    raise AssertionError("the command kept no upload with bytes on the server within 60 s")
