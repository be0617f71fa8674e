"""Client CPU of a photo's S3 requests, against a real S3 server (SeaweedFS on loopback).

    python -m bench.s3_requests [--photos 100] [--rounds 5] [--moto] [--profile COLUMN]

A photo costs the api one upload of its original (``put_stream``, 64 KiB chunks, as the
api receives them) and the worker one GET of it and three PUTs of its derivatives side by
side (``get_bytes``, ``put_bytes``), as ``services/worker/processor.py`` does. Each
column runs the same requests on the same bytes; rounds alternate the columns and the
figure is the median round's CPU per photo (``time.process_time``: the server runs in
its own process, so this is the client's CPU alone).

Anchor: the transport's floor, aiohttp alone sending the same requests to URLs presigned
before the clock starts (no signing, no botocore). ``stock`` is the store on a plain
aioboto3 client (path-style, checksums only when required), without the tuning of
``filmstrip/compat/botocore.py`` and ``S3BlobStore.from_settings``; ``ours`` is the store
as the roles open it (over this plain-http endpoint it signs each body's SHA-256),
``unsigned`` the same with ``FILMSTRIP_S3_SIGN_PAYLOAD=false``.
``--profile ours`` prints where ``ours`` spends (cProfile, one extra round).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import os
import pstats
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

from filmstrip.blobs.s3 import S3BlobStore
from filmstrip.settings import load_settings

ORIGINAL = 3 * 2**20
DERIVATIVES = (5_000, 40_000, 300_000)
NET_CHUNK = 64 * 1024
BUCKET = "bench-s3-requests"
KEYS = ("bench-key", "bench-secret")

# The api's side of a photo and the worker's, each given the photo's number.
Photo = tuple[Callable[[int], Awaitable[None]], Callable[[int], Awaitable[None]]]


async def chunks(data: bytes) -> AsyncIterator[bytes]:
    view = memoryview(data)
    for i in range(0, len(data), NET_CHUNK):
        yield bytes(view[i : i + NET_CHUNK])


def store_photo(store: S3BlobStore, original: bytes, derivatives: list[bytes]) -> Photo:
    """The api's and worker's requests of one photo through ``store``."""

    async def api(n: int) -> None:
        await store.put_stream(f"o/{n}", chunks(original), content_type="image/jpeg")

    async def worker(n: int) -> None:
        await store.get_bytes(f"o/{n}")
        await asyncio.gather(
            *(
                store.put_bytes(f"d/{n}/{i}", d, content_type="image/webp", durable=False)
                for i, d in enumerate(derivatives)
            )
        )

    return api, worker


def floor_photo(
    http: aiohttp.ClientSession,
    urls: Callable[[str, str], str],
    original: bytes,
    derivatives: list[bytes],
) -> Photo:
    """The same requests with aiohttp alone, to URLs presigned outside the clock."""

    async def api(n: int) -> None:
        # Received in chunks, as the api receives it.
        body = b"".join([chunk async for chunk in chunks(original)])
        async with http.put(urls("put_object", f"o/{n}"), data=body) as resp:
            resp.raise_for_status()
            await resp.read()

    async def put(url: str, data: bytes) -> None:
        async with http.put(url, data=data) as resp:
            resp.raise_for_status()
            await resp.read()

    async def worker(n: int) -> None:
        async with http.get(urls("get_object", f"o/{n}")) as resp:
            resp.raise_for_status()
            b"".join([c async for c in resp.content.iter_chunked(256 * 1024)])
        await asyncio.gather(
            *(put(urls("put_object", f"d/{n}/{i}"), d) for i, d in enumerate(derivatives))
        )

    return api, worker


async def round_of(photo: Photo, photos: int, base: int) -> dict[str, float]:
    """CPU ms per photo of each side over ``photos`` photos."""
    cpu = {"api": 0.0, "worker": 0.0}
    for n in range(base, base + photos):
        for side, fn in zip(cpu, photo, strict=True):
            start = time.process_time()
            await fn(n)
            cpu[side] += time.process_time() - start
    return {side: 1000 * spent / photos for side, spent in cpu.items()}


async def stock_store(settings: Any) -> tuple[S3BlobStore, contextlib.AsyncExitStack]:
    import aioboto3
    from botocore.config import Config

    session = aioboto3.Session(
        aws_access_key_id=KEYS[0], aws_secret_access_key=KEYS[1], region_name="us-east-1"
    )
    config = Config(
        s3={"addressing_style": "path"},
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    stack = contextlib.AsyncExitStack()
    client = await stack.enter_async_context(
        session.client("s3", endpoint_url=settings.blobs.s3_endpoint_url, config=config)
    )
    return S3BlobStore(client, BUCKET), stack


def presigner(endpoint: str) -> Any:
    """A botocore client that presigns with SigV4 (its default for presigning is SigV2)."""
    import botocore.session
    from botocore.config import Config

    return botocore.session.get_session().create_client(
        "s3", region_name="us-east-1", endpoint_url=endpoint,
        aws_access_key_id=KEYS[0], aws_secret_access_key=KEYS[1],
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )  # fmt: skip


async def run(args: argparse.Namespace, endpoint: str) -> None:
    url = f"s3://{BUCKET}"
    env = {
        "FILMSTRIP_BLOB_URL": url,
        "FILMSTRIP_S3_ENDPOINT_URL": endpoint,
        "FILMSTRIP_S3_ACCESS_KEY_ID": KEYS[0],
        "FILMSTRIP_S3_SECRET_ACCESS_KEY": KEYS[1],
    }
    settings = load_settings(env)
    ours = await S3BlobStore.from_settings(url, settings)
    await ours.ensure_bucket()
    unsigned = await S3BlobStore.from_settings(
        url, load_settings({**env, "FILMSTRIP_S3_SIGN_PAYLOAD": "false"})
    )
    stock, stock_stack = await stock_store(settings)
    original = os.urandom(ORIGINAL)
    derivatives = [os.urandom(size) for size in DERIVATIVES]
    signer = presigner(endpoint)

    presigned: dict[tuple[str, str], str] = {}

    def urls(op: str, key: str) -> str:
        return presigned[(op, key)]

    async def presign(base: int) -> None:
        for n in range(base, base + args.photos):
            keys = [("put_object", f"o/{n}"), ("get_object", f"o/{n}")]
            keys += [("put_object", f"d/{n}/{i}") for i in range(len(DERIVATIVES))]
            for op, key in keys:
                presigned[(op, key)] = signer.generate_presigned_url(
                    op, Params={"Bucket": BUCKET, "Key": key}, ExpiresIn=3600
                )

    connector = aiohttp.TCPConnector(limit=32)
    async with aiohttp.ClientSession(connector=connector) as http:
        columns: dict[str, Photo] = {
            "floor": floor_photo(http, urls, original, derivatives),
            "stock": store_photo(stock, original, derivatives),
            "ours": store_photo(ours, original, derivatives),
            "unsigned": store_photo(unsigned, original, derivatives),
        }
        figures: dict[str, list[dict[str, float]]] = {name: [] for name in columns}
        base = 0
        # One warm-up round each (connections, botocore's caches), not counted.
        for r in range(args.rounds + 1):
            order = list(columns) if r % 2 == 0 else list(reversed(columns))
            for name in order:
                await presign(base)
                got = await round_of(columns[name], args.photos, base)
                base += args.photos
                await ours.delete_prefix("")  # the server's disk holds a few rounds only
                if r:
                    figures[name].append(got)
        if args.profile:
            await presign(base)
            profile = cProfile.Profile()
            profile.enable()
            await round_of(columns[args.profile], args.photos, base)
            profile.disable()
    await stock_stack.aclose()
    await ours.delete_prefix("")
    await ours.close()
    await unsigned.close()

    def median(name: str, side: str) -> float:
        return statistics.median(f[side] for f in figures[name])

    print(
        f"\nclient CPU per photo, ms (median of {args.rounds} rounds of {args.photos} photos; "
        f"api: one {ORIGINAL >> 20} MiB put_stream; worker: one GET, three PUTs of "
        f"{'/'.join(f'{s // 1000} KB' for s in DERIVATIVES)})"
    )
    print(f"{'':>8} {'api':>8} {'worker':>8} {'both':>8} {'per request':>12} {'/floor':>8}")
    floor_both = median("floor", "api") + median("floor", "worker")
    for name in columns:
        api, worker = median(name, "api"), median(name, "worker")
        both = api + worker
        print(
            f"{name:>8} {api:8.2f} {worker:8.2f} {both:8.2f} {both / 5:12.2f} "
            f"{both / floor_both:7.2f}x"
        )
    spread = {n: [f["api"] + f["worker"] for f in figures[n]] for n in columns}
    print("rounds (both sides): " + "; ".join(
        f"{n} {min(v):.2f}-{max(v):.2f}" for n, v in spread.items()
    ))  # fmt: skip
    if args.profile:
        stats = pstats.Stats(profile)
        stats.sort_stats("tottime").print_stats(30)
        stats.sort_stats("cumulative").print_stats(40)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", type=int, default=100, help="photos per round and column")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--moto", action="store_true", help="moto instead of SeaweedFS")
    columns = ("floor", "stock", "ours", "unsigned")
    ap.add_argument("--profile", choices=columns, help="profile one column")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="filmstrip-s3-requests-") as folder:
        if args.moto:
            from bench.moto_server import MotoServer

            server: Any = MotoServer()
        else:
            from bench.seaweed import LoopbackSeaweedFS

            server = LoopbackSeaweedFS(Path(folder), access_key=KEYS[0], secret_key=KEYS[1])
        server.start()
        try:
            asyncio.run(run(args, server.url))
        finally:
            server.stop()


if __name__ == "__main__":
    main()
