"""Blob store throughput against the raw filesystem it sits on (and a moto S3, for scale).

    python -m bench.blobs_throughput [--mib 64] [--small 500] [--s3]

Anchors: the same bytes written with one plain write+fsync (+rename for small blobs) and
read with plain reads, in a thread. The ratio says what the store's atomicity, hashing,
sidecar and event-loop hops cost.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from filmstrip.blobs import BlobStore
from filmstrip.blobs.fs import FileBlobStore

NET_CHUNK = 64 * 1024  # what aiohttp's iter_chunked typically hands the api


async def best(runs: int, fn: Callable[[], Awaitable[None]]) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        await fn()
        times.append(time.perf_counter() - start)
    return min(times)


async def chunks(data: bytes) -> AsyncIterator[bytes]:
    view = memoryview(data)
    for i in range(0, len(data), NET_CHUNK):
        yield bytes(view[i : i + NET_CHUNK])


def raw_write(path: Path, data: bytes, sync_dir: bool = False) -> None:
    tmp = path.with_suffix(".tmp")
    with tmp.open("wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    if sync_dir:  # what makes the rename itself survive a crash
        fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        os.fsync(fd)
        os.close(fd)


def raw_read(path: Path) -> int:
    n = 0
    with path.open("rb") as fh:
        while block := fh.read(256 * 1024):
            n += len(block)
    return n


async def bench_store(
    name: str, store: BlobStore, data: bytes, small: list[bytes]
) -> dict[str, float]:
    mib = len(data) / 2**20
    key = f"bench/{uuid.uuid4().hex}"

    async def put() -> None:
        await store.put_stream(key, chunks(data), content_type="image/jpeg")

    async def get() -> None:
        _, it = await store.open_stream(key)
        async for _ in it:
            pass

    async def puts() -> None:
        for i, blob in enumerate(small):
            await store.put_bytes(f"{key}-s/{i}", blob, content_type="image/webp")

    t_put = await best(3, put)
    t_get = await best(3, get)
    t_small = await best(1, puts)
    await store.delete_prefix("bench/")
    out = {"put_MiBps": mib / t_put, "get_MiBps": mib / t_get, "small_ops": len(small) / t_small}
    print(f"{name:>8}: put_stream {out['put_MiBps']:.0f} MiB/s, open_stream "
          f"{out['get_MiBps']:.0f} MiB/s, put_bytes {out['small_ops']:.0f} blobs/s")  # fmt: skip
    return out


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mib", type=int, default=64)
    ap.add_argument("--small", type=int, default=300, help="30 KB blobs to write one by one")
    ap.add_argument("--s3", action="store_true", help="also run against a moto server")
    args = ap.parse_args()
    data = os.urandom(args.mib * 2**20)
    small = [os.urandom(30_000) for _ in range(args.small)]

    where = os.environ.get("BENCH_DIR")
    with tempfile.TemporaryDirectory(prefix="filmstrip-bench-", dir=where) as d:
        raw = Path(d) / "raw"
        raw.mkdir()
        loop = asyncio.get_running_loop()
        t_w = await best(3, lambda: loop.run_in_executor(None, raw_write, raw / "big", data))
        t_r = await best(3, lambda: loop.run_in_executor(None, raw_read, raw / "big"))

        async def raw_small() -> None:
            for i, blob in enumerate(small):
                await loop.run_in_executor(None, raw_write, raw / f"s{i}", blob)

        t_s = await best(1, raw_small)

        async def raw_small_durable() -> None:
            for i, blob in enumerate(small):
                await loop.run_in_executor(None, raw_write, raw / f"d{i}", blob, True)

        t_d = await best(1, raw_small_durable)
        mib = args.mib
        anchor = {"put_MiBps": mib / t_w, "get_MiBps": mib / t_r, "small_ops": len(small) / t_s}
        print(f"{'raw fs':>8}: write+fsync {anchor['put_MiBps']:.0f} MiB/s, read "
              f"{anchor['get_MiBps']:.0f} MiB/s, write+fsync+rename {anchor['small_ops']:.0f} "
              f"files/s, +dir fsync {len(small) / t_d:.0f} files/s")  # fmt: skip

        fs = FileBlobStore(Path(d) / "store")
        got = await bench_store("fs", fs, data, small)
        await fs.close()
        print("    ratio vs raw: " + ", ".join(f"{k} {got[k] / anchor[k]:.2f}" for k in anchor))
        durable = got["small_ops"] * t_d / len(small)
        print(f"    put_bytes vs durable raw (+dir fsync): {durable:.2f}")

    if args.s3:
        from bench.moto_server import MotoServer
        from filmstrip.blobs.s3 import S3BlobStore
        from filmstrip.settings import load_settings

        with MotoServer() as moto:
            url = "s3://bench"
            env = {
                "FILMSTRIP_BLOB_URL": url,
                "FILMSTRIP_S3_ENDPOINT_URL": moto.url,
                "FILMSTRIP_S3_ACCESS_KEY_ID": "x",
                "FILMSTRIP_S3_SECRET_ACCESS_KEY": "x",
            }
            s3 = await S3BlobStore.from_settings(url, load_settings(env))
            await s3.ping()
            await bench_store("s3/moto", s3, data, small[:100])
            await s3.close()


if __name__ == "__main__":
    asyncio.run(main())
