"""Moving up from ``filmstrip dev``: an install made by the real api and worker (SQLite,
files) is moved with ``filmstrip migrate catalog`` and ``filmstrip migrate blobs`` to
PostgreSQL and S3 (moto), and an api pointed at those serves every photo, derivative,
token, listing and session; running the commands again changes nothing; a dry run writes
nothing; a target row or blob that differs is named and left alone."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import psycopg
import pytest
import pyvips

from bench.moto_server import MotoServer
from bench.redis_server import RedisServer
from filmstrip.auth import hash_token
from filmstrip.blobs.s3 import S3BlobStore
from filmstrip.catalog import catalog_for_url
from filmstrip.catalog.migrations import LATEST
from filmstrip.embedded.redis_server import free_port
from filmstrip.embedded.supervisor import env_without_filmstrip
from filmstrip.services.api.queues import QUEUE_PATH
from filmstrip.services.cli.tokens import issue_token
from filmstrip.settings import Settings, load_settings, sqlite_url
from tests.api.conftest import start_api
from tests.support import postgres
from tests.support.stack import start_stack

ROOT = Path(__file__).resolve().parents[2]
BUCKET = "filmstrip-move-up"

pytestmark = pytest.mark.skipif(
    postgres.unreachable() is not None, reason=f"needs PostgreSQL: {postgres.unreachable()}"
)


@dataclass
class Install:
    """A ``filmstrip dev`` install, its roles stopped, and what its api served."""

    data: Path
    token: str
    admin_token: str
    revoked_token: str
    session_id: str
    photo_ids: list[str]
    # path (no query) -> (content type, body), as the embedded api served them
    served: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    signed_urls: list[str] = field(default_factory=list)


def _noise_tiff() -> bytes:
    """An uncompressed TIFF over 8 MiB, so its original goes to S3 in parts."""
    noise = pyvips.Image.gaussnoise(1800, 1700, mean=128, sigma=50).cast("uchar")
    image = noise.bandjoin([noise.rot180(), noise.fliphor()])
    data: bytes = image.tiffsave_buffer(compression="none")
    assert len(data) > 8 * 1024 * 1024
    return data


async def _upload(
    http: aiohttp.ClientSession, api: str, name: str, data: bytes, session: str
) -> str:
    form = aiohttp.FormData()
    form.add_field("session_id", session)
    form.add_field("file", data, filename=name)
    async with http.post(f"{api}/v1/photos", data=form) as resp:
        body = await resp.json()
        assert resp.status == 201, body
        return str(body["photo_id"])


def _finished(db: Path, count: int) -> bool:
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute(
            "SELECT COUNT(*) FROM photos WHERE status = 'completed' AND follow_up IS NULL"
        ).fetchall()
    finally:
        conn.close()
    return int(rows[0][0]) == count


@pytest.fixture(scope="module")
async def install(tmp_path_factory: pytest.TempPathFactory, corpus: Path) -> Install:
    data = tmp_path_factory.mktemp("dev")
    db = data / "filmstrip.db"
    # The embedded default, whatever FILMSTRIP_TEST_CATALOG says.
    stack = await asyncio.to_thread(start_stack, data, database_url=sqlite_url(str(db)))
    try:
        auth = {"Authorization": f"Bearer {stack.token}"}
        async with aiohttp.ClientSession(headers=auth) as http:
            async with http.post(f"{stack.api}/v1/sessions") as resp:
                assert resp.status == 201, await resp.text()
                session_id = str((await resp.json())["session_id"])
            photos = [
                ("photo.jpg", (corpus / "real/Canon_PowerShot_A85.jpg").read_bytes()),
                ("noise.tiff", await asyncio.to_thread(_noise_tiff)),
            ]
            ids = [await _upload(http, stack.api, n, d, session_id) for n, d in photos]
            deadline = time.monotonic() + 90
            while not await asyncio.to_thread(_finished, db, len(ids)):
                assert time.monotonic() < deadline, "the photos were not processed in 90 s"
                await asyncio.sleep(0.3)
            found = Install(data, stack.token, stack.admin_token, "", session_id, ids)
            for photo_id in ids:
                async with http.get(f"{stack.api}/v1/photos/{photo_id}") as resp:
                    body = await resp.json()
                urls = [body["original_url"], *(d["url"] for d in body["derivatives"])]
                assert len(urls) >= 3, body  # the original, a thumbnail and a preview at least
                for url in urls:
                    async with http.get(f"{stack.api}{url}") as resp:
                        assert resp.status == 200
                        found.served[urlsplit(url).path] = (resp.content_type, await resp.read())
                    found.signed_urls.append(url)
    finally:
        await asyncio.to_thread(stack.stop)
    # A token revoked before the move must stay revoked after it.
    catalog = catalog_for_url(sqlite_url(str(db)))
    await catalog.connect()
    try:
        _client, found.revoked_token = await issue_token(catalog, "gone", admin=False)
        assert await catalog.revoke_token(hash_token(found.revoked_token))
    finally:
        await catalog.close()
    return found


@dataclass
class Target:
    database_url: str
    blob_url: str
    env: dict[str, str]


@pytest.fixture
def target(install: Install, moto_server: MotoServer) -> Target:
    """A new PostgreSQL database (dropped after the test) and a new prefix in a bucket."""
    blob_url = f"s3://{BUCKET}/moved-{uuid.uuid4().hex[:10]}"
    env = env_without_filmstrip()
    env.update(
        PYTHONPATH=f"{ROOT / 'src'}{os.pathsep}{ROOT}",
        FILMSTRIP_DATA_DIR=str(install.data),
        FILMSTRIP_S3_ENDPOINT_URL=moto_server.url,
        FILMSTRIP_S3_ACCESS_KEY_ID="test",
        FILMSTRIP_S3_SECRET_ACCESS_KEY="test",
    )
    return Target(postgres.create_database(), blob_url, env)


async def _cli(target: Target, *args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "filmstrip.services.cli.main", "migrate", *args],
        env=target.env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def _move(target: Target, *extra: str) -> tuple[str, str]:
    """Both commands; their outputs (each must exit 0)."""
    catalog = await _cli(target, "catalog", "--to", target.database_url, *extra)
    assert catalog.returncode == 0, catalog.stdout + catalog.stderr
    blobs = await _cli(target, "blobs", "--to", target.blob_url, *extra)
    assert blobs.returncode == 0, blobs.stdout + blobs.stderr
    return catalog.stdout, blobs.stdout


def _settings(install: Install, target: Target, data: Path, redis_url: str) -> Settings:
    """An api's settings once moved: nothing from the old data dir, no signing secret."""
    return load_settings(
        {
            **{k: v for k, v in target.env.items() if k.startswith("FILMSTRIP_S3_")},
            "FILMSTRIP_DATA_DIR": str(data),
            "FILMSTRIP_REDIS_URL": redis_url,
            "FILMSTRIP_DATABASE_URL": target.database_url,
            "FILMSTRIP_BLOB_URL": target.blob_url,
            "FILMSTRIP_LOG_JSON": "false",
        }
    )


def _table_rows(database_url: str) -> dict[str, list[tuple[object, ...]]]:
    with psycopg.connect(database_url) as conn:
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = current_schema() ORDER BY 1"
            )
        ]
        return {
            t: sorted(conn.execute(f'SELECT * FROM "{t}"').fetchall(), key=repr) for t in tables
        }


async def _objects(moto_server: MotoServer, blob_url: str) -> dict[str, tuple[str, float]]:
    """Key -> (ETag, modified) of every object under the prefix."""
    settings = load_settings(
        {
            "FILMSTRIP_S3_ENDPOINT_URL": moto_server.url,
            "FILMSTRIP_S3_ACCESS_KEY_ID": "test",
            "FILMSTRIP_S3_SECRET_ACCESS_KEY": "test",
        }
    )
    store = await S3BlobStore.from_settings(blob_url, settings)
    try:
        return {info.key: (info.etag, info.modified) async for info in store.list()}
    finally:
        await store.close()


def _copied_and_present(out: str) -> dict[str, tuple[int, int]]:
    """From the catalog command's table: copied and present rows by table."""
    lines = out.split("Done:\n", 1)[1].splitlines()[1:]
    found = {}
    for line in lines:
        parts = line.split()
        if len(parts) < 6 or not parts[1].isdigit():
            break
        found[parts[0]] = (int(parts[2]), int(parts[3]))
    return found


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def test_an_api_on_the_new_catalog_and_store_serves_everything(
    install: Install,
    target: Target,
    redis_server: RedisServer,
    http: aiohttp.ClientSession,
    tmp_path: Path,
) -> None:
    catalog_out, blobs_out = await _move(target)
    assert "Every table verified" in catalog_out
    assert f"FILMSTRIP_DATABASE_URL={target.database_url}" in catalog_out
    assert "Every blob verified" in blobs_out
    assert f"FILMSTRIP_BLOB_URL={target.blob_url}" in blobs_out
    # The TIFF's original went up in parts, and its multipart ETag was still computed here.
    assert "by reading back 0" in blobs_out

    runner, api = await start_api(_settings(install, target, tmp_path / "new", redis_server.url))
    try:
        auth = {"Authorization": f"Bearer {install.token}"}
        async with http.get(f"{api}/v1/photos", headers=auth) as resp:
            assert resp.status == 200
            listed = [p["photo_id"] for p in (await resp.json())["items"]]
        assert sorted(listed) == sorted(install.photo_ids)
        async with http.get(f"{api}/v1/sessions/{install.session_id}", headers=auth) as resp:
            assert resp.status == 200
            assert "completed" in await resp.text()
        served: dict[str, tuple[str, bytes]] = {}
        for photo_id in install.photo_ids:
            async with http.get(f"{api}/v1/photos/{photo_id}", headers=auth) as resp:
                body = await resp.json()
            assert body["status"] == "completed"
            # Signed URLs the new api issues, fetched without a token.
            for url in [body["original_url"], *(d["url"] for d in body["derivatives"])]:
                async with http.get(f"{api}{url}") as resp:
                    assert resp.status == 200, url
                    served[urlsplit(url).path] = (resp.content_type, await resp.read())
        assert served == install.served  # every original and derivative, byte for byte
        # URLs the embedded api handed out still work: its key came along in the catalog.
        for url in install.signed_urls:
            async with http.get(f"{api}{url}") as resp:
                assert resp.status == 200, url
        admin = {"Authorization": f"Bearer {install.admin_token}"}
        async with http.get(f"{api}{QUEUE_PATH}", headers=admin) as resp:
            assert resp.status == 200  # the admin role came along with the client
        async with http.get(f"{api}{QUEUE_PATH}", headers=auth) as resp:
            assert resp.status == 403
        revoked = {"Authorization": f"Bearer {install.revoked_token}"}
        async with http.get(f"{api}/v1/photos", headers=revoked) as resp:
            assert resp.status == 401
    finally:
        await runner.cleanup()


async def test_running_the_commands_again_changes_nothing(
    install: Install, target: Target, moto_server: MotoServer
) -> None:
    await _move(target)
    rows = await asyncio.to_thread(_table_rows, target.database_url)
    objects = await _objects(moto_server, target.blob_url)
    assert len(objects) == len(install.served)

    catalog_out, blobs_out = await _move(target)

    assert "Every table verified" in catalog_out
    counts = _copied_and_present(catalog_out)
    assert {t: c for t, (c, _) in counts.items()} == dict.fromkeys(
        rows.keys() - {"schema_version"}, 0
    )
    assert {t: p for t, (_, p) in counts.items()} == {
        t: len(r) for t, r in rows.items() if t != "schema_version"
    }
    assert "copied 0, present " + str(len(objects)) in blobs_out
    assert await asyncio.to_thread(_table_rows, target.database_url) == rows
    assert await _objects(moto_server, target.blob_url) == objects  # not even rewritten


async def test_a_dry_run_writes_nothing(
    install: Install, target: Target, moto_server: MotoServer
) -> None:
    catalog_out, blobs_out = await _move(target, "--dry-run")

    assert "It would copy every row" in catalog_out
    assert f"to copy {len(install.served)}" in blobs_out
    assert await asyncio.to_thread(_table_rows, target.database_url) == {}
    assert await _objects(moto_server, target.blob_url) == {}


async def test_a_target_row_or_blob_that_differs_is_named_and_left_alone(
    install: Install, target: Target, moto_server: MotoServer
) -> None:
    await _move(target)
    photo_id = install.photo_ids[0]
    with psycopg.connect(target.database_url) as conn:
        conn.execute("UPDATE photos SET status = 'failed' WHERE id = %s", (photo_id,))
    blob_key = f"originals/{photo_id}"
    objects = await _objects(moto_server, target.blob_url)
    assert blob_key in objects
    settings = load_settings({k: v for k, v in target.env.items() if k.startswith("FILMSTRIP_S3")})
    store = await S3BlobStore.from_settings(target.blob_url, settings)
    try:
        original = await store.get_bytes(blob_key)
        tampered = bytes([original[0] ^ 1]) + original[1:]  # same size, other content
        await store.put_bytes(blob_key, tampered, content_type="image/jpeg")

        catalog = await _cli(target, "catalog", "--to", target.database_url)
        blobs = await _cli(target, "blobs", "--to", target.blob_url)

        assert catalog.returncode == 1
        assert "CONFLICT: 1 rows of photos differ in the target" in catalog.stdout
        assert f"{photo_id} (status)" in catalog.stdout
        assert blobs.returncode == 1
        assert f"CONFLICT: {blob_key}: same size, other content" in blobs.stdout
        with psycopg.connect(target.database_url) as conn:
            row = conn.execute("SELECT status FROM photos WHERE id = %s", (photo_id,)).fetchone()
        assert row == ("failed",)  # reported, not overwritten
        assert await store.get_bytes(blob_key) == tampered

        await _move(target, "--overwrite")  # told to: the source's versions replace them
        with psycopg.connect(target.database_url) as conn:
            row = conn.execute("SELECT status FROM photos WHERE id = %s", (photo_id,)).fetchone()
        assert row == ("completed",)
        assert await store.get_bytes(blob_key) == original
    finally:
        await store.close()


async def test_a_catalog_of_an_older_release_is_upgraded_copied_and_extra_rows_refused(
    tmp_path: Path,
) -> None:
    # Made by release 10e62e0, before schema versions (tests/catalog/fixtures).
    old = tmp_path / "old.db"
    old.write_bytes((ROOT / "tests/catalog/fixtures/release-10e62e0.db").read_bytes())
    env = env_without_filmstrip()
    env.update(PYTHONPATH=f"{ROOT / 'src'}{os.pathsep}{ROOT}", FILMSTRIP_DATA_DIR=str(tmp_path))
    moved = Target(postgres.create_database(), "", env)
    source = ("--from", sqlite_url(str(old)), "--to", moved.database_url)

    first = await _cli(moved, "catalog", *source)

    assert first.returncode == 0, first.stdout + first.stderr
    assert f"source: schema brought from version 0 to {LATEST}" in first.stdout
    assert f"target: schema brought from version 0 to {LATEST}" in first.stdout
    assert "Every table verified" in first.stdout
    with psycopg.connect(moved.database_url) as conn:
        conn.execute(
            "INSERT INTO clients (id, name, is_admin, created_at) VALUES ('x', 'x', 0, 'now')"
        )

    refused = await _cli(moved, "catalog", *source)

    assert refused.returncode == 1
    assert "REFUSED: the target holds 1 rows the source lacks (clients 1)" in refused.stdout
    allowed = await _cli(moved, "catalog", *source, "--allow-extra")
    assert allowed.returncode == 0, allowed.stdout
    assert "kept 1 rows of clients that only the target has" in allowed.stdout


async def _embedded_catalog(data_dir: Path) -> dict[str, str]:
    """The environment of an embedded install in ``data_dir`` whose catalog a token
    command has just made (the source of a ``migrate catalog`` run with no ``--from``)."""
    env = env_without_filmstrip()
    env.update(PYTHONPATH=f"{ROOT / 'src'}{os.pathsep}{ROOT}", FILMSTRIP_DATA_DIR=str(data_dir))
    made = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "filmstrip.services.cli.main", "token", "create", "someone",
         "--create-catalog"],
        env=env, cwd=ROOT, capture_output=True, timeout=60,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    return env


async def test_a_refusal_comes_before_anything_is_written(tmp_path: Path) -> None:
    # The target: a catalog of release 10e62e0 (before schema versions) with its own rows.
    foreign = tmp_path / "foreign.db"
    foreign.write_bytes((ROOT / "tests/catalog/fixtures/release-10e62e0.db").read_bytes())
    before = foreign.read_bytes()
    source = Target("", "", await _embedded_catalog(tmp_path))

    refused = await _cli(source, "catalog", "--to", sqlite_url(str(foreign)))

    assert refused.returncode == 1
    assert "REFUSED: the target holds" in refused.stdout
    assert foreign.read_bytes() == before  # not even migrated


async def test_a_target_that_refuses_connections_fails_the_command_at_once(
    tmp_path: Path,
) -> None:
    # A role waits up to 10 s for a server still starting; a command run by hand says why
    # it cannot connect and leaves.
    env = await _embedded_catalog(tmp_path)
    closed = f"postgresql://filmstrip@127.0.0.1:{free_port()}/none"

    started = time.monotonic()
    out = await _cli(Target("", "", env), "catalog", "--to", closed)
    took = time.monotonic() - started

    assert out.returncode == 1, out.stdout
    [line] = out.stderr.splitlines()
    assert line.startswith("filmstrip migrate catalog: ") and "Connection refused" in line, line
    # Loose (a shared machine; the interpreter's start is most of it): the hang was 10 s.
    assert took < 5, f"took {took:.1f} s"
