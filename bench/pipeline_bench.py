"""Pipeline speed and memory, side by side with the one-decode floor and with Pillow.

Run: ``python -m bench.pipeline_bench [--runs N] [--corpus PATH]``. Prints, per input:
(a) the floor: one shrink-on-load decode at preview scale with pyvips;
(b) our stages: quick (validation + thumbnails), ready (validation + metadata +
    thumbnails: every derivative, EXIF, hashes: what full_processing does before the photo
    is announced ready) and full (ready + the full-size WebP, which the worker runs later
    in a low-priority follow-up job);
(c) Pillow doing the same derivatives (draft, exif_transpose, thumbnail, save);
(d) the ``vipsthumbnail`` CLI making the preview, when it is on PATH;
then the ratios against the targets and the peak RSS of one process running
full_processing at concurrency 4 on 12 MP photos.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pyvips
from PIL import Image, ImageOps

from filmstrip.concurrency import configure_pool
from filmstrip.pipeline import PipelineOptions
from filmstrip.pipeline.context import StageContext
from filmstrip.pipeline.registry import get_stage
from filmstrip.pipeline.runner import run_stage
from filmstrip.pipeline.vips import configure_vips

ROOT = Path(__file__).resolve().parents[1]
OPTIONS = PipelineOptions()
QUICK = ["validation", "thumbnails"]
DERIVATIVES = ["validation", "metadata", "thumbnails"]
FULL = ["validation", "metadata", "thumbnails", "optimization"]


def make_12mp_jpeg() -> bytes:
    """A 4032x3024 camera-like JPEG: a real photo upscaled plus sensor-like noise, q92."""
    corpus_photo = ROOT.parent / "shared" / "corpus" / "real" / "Landscape_1.jpg"
    if corpus_photo.is_file():
        base = pyvips.Image.new_from_file(str(corpus_photo))
    else:
        base = pyvips.Image.xyz(1800, 1200).colourspace("srgb").cast("uchar")
    big = base.resize(4032 / base.width, vscale=3024 / base.height)
    noisy = (big + pyvips.Image.gaussnoise(4032, 3024, sigma=6)).cast("uchar")
    return bytes(noisy.write_to_buffer(".jpg", Q=92))


def floor(data: bytes) -> None:
    """One decode at preview scale: the largest DCT shrink that keeps >= preview size."""
    image = pyvips.Image.new_from_buffer(data, "", access="sequential")
    shrink = 1
    for candidate in (8, 4, 2):
        if -(-max(image.width, image.height) // candidate) >= OPTIONS.preview_size:
            shrink = candidate
            break
    pyvips.Image.new_from_buffer(data, "", shrink=shrink, access="sequential").copy_memory()


def vips_thumbnail(data: bytes) -> None:
    """libvips' own thumbnail at preview size (it shrinks on load more cautiously)."""
    pyvips.Image.thumbnail_buffer(data, OPTIONS.preview_size).copy_memory()


def ours(stages: list[str]) -> Callable[[bytes], None]:
    def run(data: bytes) -> None:
        ctx = StageContext(data, OPTIONS)
        for name in stages:
            get_stage(name).run(ctx)

    return run


def pillow(data: bytes) -> None:
    with Image.open(io.BytesIO(data)) as image:
        image.draft("RGB", (OPTIONS.preview_size, OPTIONS.preview_size))
        upright = ImageOps.exif_transpose(image).convert("RGB")
    preview = upright.copy()
    preview.thumbnail((OPTIONS.preview_size, OPTIONS.preview_size))
    preview.save(io.BytesIO(), "JPEG", quality=OPTIONS.preview_quality)
    thumb = preview.copy()
    thumb.thumbnail((OPTIONS.thumbnail_size, OPTIONS.thumbnail_size))
    thumb.save(io.BytesIO(), "WEBP", quality=OPTIONS.thumbnail_quality)


def vipsthumbnail(path: str) -> Callable[[bytes], None] | None:
    exe = shutil.which("vipsthumbnail")
    if exe is None:
        return None
    out = os.path.join(tempfile.gettempdir(), "bench_vt_%s.jpg")

    def run(_data: bytes) -> None:
        subprocess.run([exe, path, "-s", str(OPTIONS.preview_size), "-o", out], check=True)

    return run


CLOCKS: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "cpu": time.process_time}
clock = time.perf_counter


def timed(fn: Callable[[bytes], None], data: bytes, runs: int) -> float:
    """Best time in ms over ``runs`` runs, after one warm-up. The best, not the median:
    the machine is shared, and noise only ever adds time. With ``--clock cpu`` it is the
    process's CPU time, which other tenants of a shared machine barely disturb."""
    fn(data)
    samples = []
    for _ in range(runs):
        started = clock()
        fn(data)
        samples.append((clock() - started) * 1000)
    return min(samples)


async def concurrent_rss(data: bytes, stages: list[str], photos: int, concurrency: int) -> None:
    configure_pool(concurrency)
    gate = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with gate:
            ctx = StageContext(data, OPTIONS)
            for name in stages:
                await run_stage(get_stage(name), ctx)

    await asyncio.gather(*(one() for _ in range(photos)))


def timed_together(
    fns: dict[str, Callable[[bytes], None]], data: bytes, runs: int
) -> dict[str, float]:
    """Best time of each function, the runs interleaved (a, b, c, a, b, c, ...) so that
    load from other tenants hits every column alike and the ratios stay fair."""
    for fn in fns.values():
        fn(data)
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(runs):
        for name, fn in fns.items():
            started = clock()
            fn(data)
            best[name] = min(best[name], (clock() - started) * 1000)
    return best


def peak_rss_mb() -> float:
    """This process's peak RSS. VmHWM, not ru_maxrss: Linux carries ru_maxrss over from
    the parent through fork and exec, so a child would report the parent's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_child(stages: str) -> float:
    """Peak RSS (MB) of a fresh process running ``stages`` at concurrency 4 on 12 MP."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.pipeline_bench", "--rss-child", stages],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(json.loads(done.stdout.strip().splitlines()[-1])["rss_mb"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "corpus")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall")
    parser.add_argument("--rss-child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    global clock
    clock = CLOCKS[args.clock]
    configure_vips(OPTIONS)

    if args.rss_child:
        # The photo comes from the parent: generating it here would count in our RSS.
        data = Path(os.path.join(tempfile.gettempdir(), "bench_12mp.jpg")).read_bytes()
        stages = FULL if args.rss_child == "full" else DERIVATIVES
        asyncio.run(concurrent_rss(data, stages, photos=8, concurrency=4))
        print(json.dumps({"rss_mb": peak_rss_mb()}))
        return

    inputs: list[tuple[str, bytes, str]] = []
    twelve = make_12mp_jpeg()
    tmp = os.path.join(tempfile.gettempdir(), "bench_12mp.jpg")
    Path(tmp).write_bytes(twelve)
    inputs.append(("generated 12 MP JPEG", twelve, tmp))
    manifest = args.corpus / "manifest.json"
    if manifest.is_file():
        for entry in json.loads(manifest.read_text()):
            if entry["kind"] == "real" and entry["format"] == "jpeg":
                path = args.corpus / entry["path"]
                inputs.append((entry["path"], path.read_bytes(), str(path)))

    columns: dict[str, Callable[[bytes], None]] = {
        "floor": floor,
        "vthumb": vips_thumbnail,
        "quick": ours(QUICK),
        "ready": ours(DERIVATIVES),
        "full": ours(FULL),
        "pillow": pillow,
    }
    print(f"{args.clock} ms, best of {args.runs} runs; vips_concurrency={OPTIONS.vips_concurrency}")
    print(f"{'input':44} " + " ".join(f"{name:>7}" for name in [*columns, "vipsthumbnail"]))
    twelve_row: dict[str, float] = {}
    corpus_sum = dict.fromkeys(columns, 0.0)
    for label, data, path in inputs:
        generated = label.startswith("generated")
        # As many runs for the small corpus files: with two, one noisy run decided a sum.
        runs = args.runs
        row = timed_together(columns, data, runs)
        vt = vipsthumbnail(path)
        vt_cell = f"{timed(vt, data, runs):7.1f}" if vt else f"{'absent':>7}"
        if generated:
            twelve_row = row
        else:
            for name, value in row.items():
                corpus_sum[name] += value
        print(f"{label:44} " + " ".join(f"{row[n]:7.1f}" for n in columns) + f" {vt_cell}")
    if len(inputs) > 1:
        print(f"{'sum over corpus JPEGs':44} " + " ".join(f"{corpus_sum[n]:7.0f}" for n in columns))

    # AVIF vs WebP at full size on the 12 MP photo: decides optimize_avif's default.
    encode_ms = {}
    for fmt, effort in (("webp", OPTIONS.optimize_effort), ("avif", OPTIONS.optimize_avif_effort)):
        image = pyvips.Image.new_from_buffer(twelve, "", access="sequential")
        started = time.perf_counter()
        image.write_to_buffer(f".{fmt}", Q=OPTIONS.optimize_quality, effort=effort, keep="none")
        encode_ms[fmt] = (time.perf_counter() - started) * 1000

    rss_full = rss_child("full")
    rss_derivs = rss_child("derivatives")

    def ratios(row: dict[str, float], title: str) -> None:
        print(title)
        print(f"  ready / floor           = {row['ready'] / row['floor']:5.2f}   target <= 1.5")
        print(f"  quick / floor           = {row['quick'] / row['floor']:5.2f}")
        print(f"  ready / vthumb          = {row['ready'] / row['vthumb']:5.2f}")
        print(
            f"  full / floor            = {row['full'] / row['floor']:5.2f}"
            "   (+ full-size WebP, in the follow-up job after the photo is ready)"
        )
        print(f"  pillow / ready          = {row['pillow'] / row['ready']:5.2f}   target >= 1.3")
        print(f"  pillow / quick          = {row['pillow'] / row['quick']:5.2f}")

    print()
    ratios(twelve_row, "12 MP JPEG ratios:")
    if len(inputs) > 1:
        ratios(corpus_sum, "corpus JPEG ratios (sums):")
    ratio = encode_ms["avif"] / encode_ms["webp"]
    print(
        f"full-size encode, 12 MP: webp {encode_ms['webp']:.0f} ms, avif {encode_ms['avif']:.0f} ms"
        f" (avif/webp {ratio:.2f}; AVIF kept only when <= {OPTIONS.optimize_avif_max_time_ratio})"
    )
    print(
        f"peak RSS, one process, concurrency 4, 8 x 12 MP: full_processing {rss_full:.0f} MB, "
        f"without optimization {rss_derivs:.0f} MB   target <= 350"
    )


if __name__ == "__main__":
    main()
