"""The S3 endpoint cache backport: safe (no rule reads what it drops) and effective."""

from __future__ import annotations

import uuid
from typing import Any

import botocore.loaders
from botocore.endpoint_provider import EndpointProvider

from bench.moto_server import MotoServer
from filmstrip.blobs.s3 import S3BlobStore
from filmstrip.compat.botocore import UNREFERENCED
from filmstrip.settings import load_settings
from tests.blobs.test_s3 import s3_env


def _referenced(node: Any, found: set[str]) -> set[str]:
    """Every parameter a rule reads: ``{"ref": name}`` and ``{name}`` in templates."""
    if isinstance(node, dict):
        if isinstance(node.get("ref"), str):
            found.add(node["ref"])
        for value in node.values():
            _referenced(value, found)
    elif isinstance(node, list):
        for value in node:
            _referenced(value, found)
    elif isinstance(node, str):
        found.update(part.split("}")[0].split("#")[0] for part in node.split("{")[1:])
    return found


def test_no_s3_endpoint_rule_reads_the_dropped_parameters() -> None:
    """If this fails, botocore's S3 rules read an object-level parameter now: remove the
    backport (filmstrip/compat/botocore.py), it would resolve wrong endpoints."""
    ruleset = botocore.loaders.create_loader().load_service_model("s3", "endpoint-rule-set-1")
    assert not UNREFERENCED & _referenced(ruleset["rules"], set())
    assert "Bucket" in _referenced(ruleset["rules"], set())  # the walk does find reads


async def test_a_buckets_objects_share_one_endpoint_resolution(moto_server: MotoServer) -> None:
    url = f"s3://endpoints-{uuid.uuid4().hex[:12]}"
    store = await S3BlobStore.from_settings(url, load_settings(s3_env(moto_server, url)))
    try:
        await store.ensure_bucket()
        await store.put_bytes("warm", b"x", content_type="image/jpeg")
        before = EndpointProvider.resolve_endpoint.cache_info().misses  # type: ignore[attr-defined]
        for i in range(10):
            key = f"originals/{uuid.uuid4()}-{i}"
            await store.put_bytes(key, b"x", content_type="image/jpeg")
            assert await store.get_bytes(key) == b"x"
        after = EndpointProvider.resolve_endpoint.cache_info().misses  # type: ignore[attr-defined]
        assert after - before <= 2, f"{after - before} resolutions for 20 requests"
    finally:
        await store.close()
