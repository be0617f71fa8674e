"""Every hostile file (the corpus's ``bad/`` and generated ones) is refused by the api or
failed as DATA with a reason by a real worker process, which never dies and stays under
its memory limit."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from filmstrip.catalog import PhotoStatus
from filmstrip.embedded.supervisor import Role, Supervisor, command, env_without_filmstrip
from filmstrip.settings import Settings
from tests.api.conftest import Api
from tests.pipeline.test_corpus import REFUSED
from tests.security.conftest import MakeApi
from tests.security.hostile_files import Hostile, generated

ROOT = Path(__file__).resolve().parents[2]
RSS_LIMIT_BYTES = 500 * 1024 * 1024
# Bounds a hung worker; the files take a few seconds in all.
SETTLE_S = 120.0


class WorkerProcess:
    """``filmstrip worker`` as a subprocess over the api's Redis, catalog and blobs."""

    def __init__(self, settings: Settings, log: Path) -> None:
        env = env_without_filmstrip()
        env["PYTHONPATH"] = f"{ROOT / 'src'}{os.pathsep}{ROOT}"
        env.update(
            FILMSTRIP_DATA_DIR=settings.files.data_dir,
            FILMSTRIP_DATABASE_URL=settings.effective_database_url,
            FILMSTRIP_REDIS_URL=settings.redis.url,
            FILMSTRIP_WORKER_CONCURRENCY="2",
            FILMSTRIP_PIPELINE_THREADS="1",
            FILMSTRIP_JOB_BACKOFF_MS="50",
            FILMSTRIP_LOG_JSON="false",
        )
        self.log = log
        self.supervisor = Supervisor([Role("worker", command("worker"), env, log=log, cwd=ROOT)])
        self.supervisor.start()

    @property
    def proc(self) -> subprocess.Popen[bytes]:
        proc = self.supervisor.process("worker")
        assert proc is not None
        return proc

    def alive(self) -> bool:
        return self.supervisor.running("worker")

    def peak_rss(self) -> int:
        """The process's peak resident set (VmHWM), in bytes."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmHWM in /proc status")

    def stop(self) -> None:
        self.supervisor.stop(timeout=30)


@pytest.fixture
def worker_for(tmp_path: Path) -> Iterator[Any]:
    started: list[WorkerProcess] = []

    def start(api: Api) -> WorkerProcess:
        worker = WorkerProcess(api.settings, tmp_path / f"worker{len(started)}.log")
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()
        text = worker.log.read_text()
        # A native crash: faulthandler's report starts here, above the thread dumps.
        crash = text.find("Fatal Python error")
        shown = text[max(0, crash - 2000) :] if crash >= 0 else text[-3000:]
        print(f"--- worker log (tail)\n{shown}")


def corpus_bad(corpus: Path, manifest: list[dict[str, Any]]) -> list[Hostile]:
    """The corpus's bad files; those the manifest says to reject must never complete."""
    return [
        Hostile(e["path"], (corpus / e["path"]).read_bytes(), str(e["expect"]).startswith("reject"))
        for e in manifest
        if e["kind"] == "bad"
    ]


async def _settle(api: Api, worker: WorkerProcess, photo_ids: list[str]) -> None:
    async with asyncio.timeout(SETTLE_S):
        while True:
            assert worker.alive(), f"the worker died (exit code {worker.proc.returncode})"
            rows = [await api.state.catalog.get_photo(p) for p in photo_ids]
            if all(r is not None and r.status in ("completed", "failed") for r in rows):
                return
            await asyncio.sleep(0.2)


async def test_hostile_files_are_refused_or_fail_as_data(
    make_api: MakeApi, worker_for: Any, corpus: Path, manifest: list[dict[str, Any]]
) -> None:
    api = await make_api(api_rate_burst="100000")
    worker: WorkerProcess = worker_for(api)
    files = corpus_bad(corpus, manifest) + await asyncio.to_thread(generated, corpus)
    accepted: dict[str, Hostile] = {}
    problems: list[str] = []
    codes: dict[str, str] = {}  # a corpus file → the code the api or the worker gave it
    for hostile in files:
        resp = await api.upload(hostile.data, filename=hostile.name.rsplit("/", 1)[-1])
        body = await resp.json()
        if resp.status == 201:
            accepted[body["photo_id"]] = hostile
        elif resp.status in (400, 413, 415):
            assert body["error"]["code"] and body["error"]["message"]
            codes[hostile.name] = body["error"]["code"]
        else:
            problems.append(f"{hostile.name}: answered {resp.status} {body}")
    await _settle(api, worker, list(accepted))

    outcomes: dict[str, str] = {}
    for photo_id, hostile in accepted.items():
        photo = await api.state.catalog.get_photo(photo_id)
        assert photo is not None
        outcomes[hostile.name] = photo.status
        if photo.status == PhotoStatus.FAILED:
            codes[hostile.name] = str(photo.error_code)
            if photo.error_category != "DATA" or not photo.processing_error:
                problems.append(
                    f"{hostile.name}: failed as {photo.error_category}: {photo.processing_error}"
                )
        elif hostile.must_reject:
            problems.append(f"{hostile.name}: processed, but it must be refused")
        elif not {"thumbnail", "preview"} <= {d.name for d in photo.derivatives}:
            problems.append(f"{hostile.name}: completed without its derivatives")
    by_status = {
        k: sorted(n for n, o in outcomes.items() if o == k) for k in set(outcomes.values())
    }
    print("outcomes:", by_status, f"refused by the api: {len(files) - len(accepted)}")
    assert problems == [], "\n".join(problems)
    # One code per fault, whichever of the api or the worker refused the file.
    assert {n: c for n, c in codes.items() if n in REFUSED} == REFUSED
    # The cases that must not pass both gates, beyond the corpus's own checks.
    for name in ("png-65535x65535-header", "jpeg-claims-64250x64250", "png-bomb-over-cap"):
        assert outcomes.get(name) == PhotoStatus.FAILED, (name, outcomes.get(name))

    # Served back, an accepted polyglot is only ever an image to the browser.
    polyglot = next(p for p, h in accepted.items() if h.name == "jpeg+zip-polyglot")
    got = await api.http.get(f"{api.url}/v1/photos/{polyglot}/original", headers=api.auth)
    assert got.headers["Content-Type"] == "image/jpeg"
    assert got.headers["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in got.headers["Content-Security-Policy"]

    # The worker is still serving, and never went past its memory limit.
    good = await api.upload((corpus / "real/Landscape_1.jpg").read_bytes())
    good_id = (await good.json())["photo_id"]
    await _settle(api, worker, [good_id])
    photo = await api.state.catalog.get_photo(good_id)
    assert photo is not None and photo.status == PhotoStatus.COMPLETED
    assert worker.alive()
    peak = worker.peak_rss()
    print(f"worker peak RSS {peak / 2**20:.0f} MB over {len(files)} hostile files")
    assert peak < RSS_LIMIT_BYTES, f"worker peak RSS {peak / 2**20:.0f} MB"
