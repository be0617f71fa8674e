"""``open_blob_store`` picks the backend from the URL in the settings."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from bench.moto_server import MotoServer
from filmstrip.blobs import open_blob_store
from filmstrip.blobs.fs import FileBlobStore
from filmstrip.blobs.s3 import S3BlobStore
from filmstrip.settings import load_settings
from tests.blobs.test_s3 import s3_env


async def test_file_url(tmp_path: Path) -> None:
    settings = load_settings({"FILMSTRIP_BLOB_URL": (tmp_path / "b").as_uri()})
    store = await open_blob_store(settings)
    try:
        assert isinstance(store, FileBlobStore)
        assert store.root == tmp_path / "b"
        await store.put_bytes("k", b"v", content_type="image/jpeg")
        assert (tmp_path / "b" / "k").read_bytes() == b"v"
    finally:
        await store.close()


async def test_default_is_files_under_the_data_dir(tmp_path: Path) -> None:
    store = await open_blob_store(load_settings({"FILMSTRIP_DATA_DIR": str(tmp_path)}))
    try:
        assert isinstance(store, FileBlobStore)
        assert store.root == tmp_path / "blobs"
    finally:
        await store.close()


async def test_s3_url(moto_server: MotoServer) -> None:
    bucket = f"factory-{uuid.uuid4().hex[:8]}"
    store = await open_blob_store(load_settings(s3_env(moto_server, f"s3://{bucket}")))
    try:
        assert isinstance(store, S3BlobStore)
        assert (store.bucket, store.prefix) == (bucket, "")
        await store.put_bytes("k", b"v", content_type="image/jpeg")
        assert await store.get_bytes("k") == b"v"
        await store.delete("k")
        await store.client.delete_bucket(Bucket=bucket)
    finally:
        await store.close()


async def test_unusable_url_is_refused() -> None:
    with pytest.raises(ValueError):
        load_settings({"FILMSTRIP_BLOB_URL": "ftp://x"})
