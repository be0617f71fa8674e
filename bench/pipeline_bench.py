"""Pipeline speed and memory: every format beside its own one-decode floor, and Pillow.

Run: ``PYTHONPATH=src:. python -m bench.pipeline_bench [--runs N] [--corpus PATH]``.

For each input the floor is one decode at the size the preview needs, with the decoder
the pipeline uses (libvips' shrink-on-load for JPEG and WebP; a full decode for PNG,
TIFF, AVIF, a GIF's first frame; pillow-heif for HEIC), and ours is the ready path
(validation, metadata, thumbnails: what full_processing does before the photo is
announced ready), split into its steps so one can see where the time goes. The two run
interleaved in every round; the ratio is the median of the rounds' ratios.

Rows: a 12 MP photo as JPEG, HEIC (the corpus's iPhone file), AVIF, PNG, WebP and TIFF, a
40-frame GIF, and "small photos": every corpus file of at most 1 MP, summed (a format the
corpus lacks at that size is generated). Inputs the corpus lacks are generated
deterministically and cached in the temp dir. Then, for the 12 MP JPEG: our quick and
full pipelines, libvips' own thumbnail, Pillow making the same derivatives and the
``vipsthumbnail`` CLI; the full-size AVIF/WebP encode times; and the peak RSS of one
process running the pipeline at concurrency 4 on 12 MP photos.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import io
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pillow_heif
import pyvips
from PIL import Image, ImageOps

from filmstrip.concurrency import configure_pool
from filmstrip.pipeline import PipelineOptions
from filmstrip.pipeline.context import StageContext
from filmstrip.pipeline.registry import get_stage
from filmstrip.pipeline.runner import run_stage
from filmstrip.pipeline.vips import configure_vips
from filmstrip.protocols.formats import ACCEPTED, sniff_format

ROOT = Path(__file__).resolve().parents[1]
OPTIONS = PipelineOptions()
QUICK = ["validation", "thumbnails"]
DERIVATIVES = ["validation", "metadata", "thumbnails"]
FULL = ["validation", "metadata", "thumbnails", "optimization"]
#: The ready path's steps as the bench reports them: validation is the header (format and
#: limits) then the one decode; metadata and thumbnails are the stages.
STEPS = ("header", "decode", "metadata", "thumbnails")
#: ready / floor targets (issue #26); rows without one are measured only.
TARGETS = {"JPEG 12 MP": 1.25, "HEIC 12 MP": 1.3, "small photos": 2.0}
SMALL_PIXELS = 1_000_000
CAMERA = (4032, 3024)
# Bump when a generator changes, so a cached input made by the old one is not reused.
GENERATOR_VERSION = 1


@dataclass(frozen=True, slots=True)
class Sample:
    label: str
    data: bytes
    fmt: str
    path: str  # a file holding ``data``, for the CLI tools


# --- inputs -------------------------------------------------------------------------------


def _cached(name: str, make: Callable[[], bytes]) -> tuple[bytes, str]:
    """``make()``'s bytes, kept in the temp dir: the generators are deterministic, so the
    cache only saves their time (an AVIF or HEIC encode takes seconds)."""
    versions = f"{GENERATOR_VERSION}-{pyvips.version(0)}.{pyvips.version(1)}.{pyvips.version(2)}"
    versions += f"-{pillow_heif.__version__}-{Image.__version__}"
    folder = Path(tempfile.gettempdir()) / "filmstrip-bench-inputs"
    path = folder / f"{hashlib.sha256(versions.encode()).hexdigest()[:12]}-{name}"
    if path.is_file():
        return path.read_bytes(), str(path)
    data = make()
    folder.mkdir(exist_ok=True)
    partial = path.with_suffix(".partial")
    partial.write_bytes(data)
    partial.replace(path)
    return data, str(path)


def _base_photo(corpus: Path) -> pyvips.Image:
    photo = corpus / "real" / "Landscape_1.jpg"
    if photo.is_file():
        return pyvips.Image.new_from_file(str(photo))
    return pyvips.Image.xyz(1800, 1200).colourspace("srgb").cast("uchar")


def camera_pixels(corpus: Path, width: int = CAMERA[0], height: int = CAMERA[1]) -> pyvips.Image:
    """A camera-like photo: a real one resized, plus sensor-like noise (seeded)."""
    base = _base_photo(corpus)
    big = base.resize(width / base.width, vscale=height / base.height)
    noise = pyvips.Image.gaussnoise(width, height, sigma=6, seed=26)
    return (big + noise).cast("uchar").copy_memory()


def _encode(image: pyvips.Image, fmt: str) -> bytes:
    if fmt == "jpeg":
        return bytes(image.write_to_buffer(".jpg", Q=92))
    if fmt == "avif":
        return bytes(image.write_to_buffer(".avif", Q=60, effort=0))
    if fmt == "png":
        return bytes(image.write_to_buffer(".png"))
    if fmt == "webp":
        return bytes(image.write_to_buffer(".webp", Q=80))
    if fmt == "tiff":
        return bytes(image.write_to_buffer(".tif", compression="lzw", predictor="horizontal"))
    if fmt == "heif":
        # libvips' wheel has no HEVC encoder; pillow-heif's x265 is deterministic.
        pil = Image.frombytes("RGB", (image.width, image.height), image.write_to_memory())
        out = io.BytesIO()
        pillow_heif.from_pillow(pil).save(out, quality=80)
        return out.getvalue()
    if fmt == "gif":
        return _animated_gif(image, frames=40)
    raise ValueError(fmt)


def _animated_gif(image: pyvips.Image, frames: int) -> bytes:
    """``frames`` frames panning across ``image``, one global palette (libvips' GIF
    encoder quantises each frame and takes seconds per frame)."""
    pil = Image.frombytes("RGB", (image.width, image.height), image.write_to_memory())
    width, height = image.width * 2 // 3, image.height * 2 // 3
    step_x, step_y = (image.width - width) // frames, (image.height - height) // frames
    palette = pil.crop((0, 0, width, height)).quantize(256)
    shots = [
        pil.crop((i * step_x, i * step_y, i * step_x + width, i * step_y + height)).quantize(
            palette=palette, dither=Image.Dither.NONE
        )
        for i in range(frames)
    ]
    out = io.BytesIO()
    shots[0].save(out, "GIF", save_all=True, append_images=shots[1:], duration=80, loop=0)
    return out.getvalue()


def large_inputs(corpus: Path) -> list[Sample]:
    """One row per format: 12 MP photos (the corpus's iPhone HEIC when present) and a
    40-frame 960x720 GIF."""
    samples: list[Sample] = []
    pixels: pyvips.Image | None = None

    def camera() -> pyvips.Image:
        nonlocal pixels
        if pixels is None:
            pixels = camera_pixels(corpus)
        return pixels

    for label, fmt in (
        ("JPEG 12 MP", "jpeg"),
        ("HEIC 12 MP", "heif"),
        ("AVIF 12 MP", "avif"),
        ("PNG 12 MP", "png"),
        ("WebP 12 MP", "webp"),
        ("TIFF 12 MP", "tiff"),
        ("GIF 40 frames", "gif"),
    ):
        iphone = corpus / "real" / "exif-at-eof.heic"
        if fmt == "heif" and iphone.is_file():
            samples.append(Sample(label, iphone.read_bytes(), fmt, str(iphone)))
            continue
        if fmt == "gif":
            data, path = _cached(
                "pan-40.gif", lambda: _encode(camera().resize(1440 / CAMERA[0]), "gif")
            )
        else:
            data, path = _cached(f"camera-12mp.{fmt}", lambda f=fmt: _encode(camera(), f))
        samples.append(Sample(label, data, fmt, path))
    return samples


def small_inputs(corpus: Path) -> list[Sample]:
    """The corpus's files of at most 1 MP, and one generated 800x600 file of each
    accepted format the corpus has none of at that size."""
    samples: list[Sample] = []
    manifest = corpus / "manifest.json"
    if manifest.is_file():
        for entry in json.loads(manifest.read_text()):
            if entry["kind"] != "real" or entry["width"] * entry["height"] > SMALL_PIXELS:
                continue
            path = corpus / entry["path"]
            data = path.read_bytes()
            fmt = sniff_format(data[:64])
            if fmt is not None:
                samples.append(Sample(entry["path"], data, fmt, str(path)))
    have = {sample.fmt for sample in samples}
    for fmt in ACCEPTED:
        if fmt in have:
            continue
        name = f"small-800x600.{fmt}"

        def make(f: str = fmt) -> bytes:
            image = camera_pixels(corpus, 800, 600)
            return _encode(image, f) if f != "gif" else _animated_gif(image, frames=1)

        data, path = _cached(name, make)
        samples.append(Sample(f"generated {name}", data, fmt, path))
    return samples


# --- what is timed ------------------------------------------------------------------------


def floor(data: bytes) -> None:
    """One decode at the size the preview needs, with the decoder the pipeline uses."""
    fmt = sniff_format(data[:64])
    if fmt == "heif":
        # libheif has no scaled decode: the whole image, as the pipeline decodes it.
        pillow_heif.open_heif(data, convert_hdr_to_8bit=True).data  # noqa: B018
        return
    image = pyvips.Image.new_from_buffer(data, "", access="sequential")
    longest = max(image.width, image.height)
    if fmt == "jpeg":
        # The largest DCT shrink that keeps at least the preview's size.
        shrink = next((s for s in (8, 4, 2) if -(-longest // s) >= OPTIONS.preview_size), 1)
        image = pyvips.Image.new_from_buffer(data, "", shrink=shrink, access="sequential")
    elif fmt == "webp" and longest > OPTIONS.preview_size:
        scale = OPTIONS.preview_size / longest
        image = pyvips.Image.new_from_buffer(data, "", scale=scale, access="sequential")
    image.copy_memory()


def ready(data: bytes) -> dict[str, float]:
    """The ready path, each step's time in ms."""
    times: dict[str, float] = {}
    started = clock()
    ctx = StageContext(data, OPTIONS)
    ctx.header()
    mark = clock()
    times["header"] = (mark - started) * 1000
    for step, stage in (("decode", "validation"), ("metadata", "metadata"), ("thumbnails", None)):
        get_stage(stage or step).run(ctx)
        now = clock()
        times[step] = (now - mark) * 1000
        mark = now
    return times


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


# --- measuring ----------------------------------------------------------------------------

Column = Callable[[bytes], Any]


@dataclass
class Times:
    """Each column's time (ms) per round; a column that returns step times keeps those."""

    rounds: dict[str, list[float]]
    steps: dict[str, list[float]]

    def median(self, column: str) -> float:
        return statistics.median(self.rounds[column])

    def ratio(self, column: str, anchor: str) -> float:
        """The median over rounds of ``column / anchor``, each pair measured side by side."""
        pairs = zip(self.rounds[column], self.rounds[anchor], strict=True)
        return statistics.median(ours / base for ours, base in pairs)

    def step(self, name: str) -> float:
        return statistics.median(self.steps[name]) if self.steps.get(name) else float("nan")


def measure(samples: list[Sample], columns: dict[str, Column], runs: int) -> list[Times]:
    """Every column on every sample, interleaved (round by round, column by column) so
    the load of other tenants of a shared machine hits every column alike; one warm-up."""
    for sample in samples:
        for fn in columns.values():
            fn(sample.data)
    results = [Times({name: [] for name in columns}, {}) for _ in samples]
    for _ in range(runs):
        for sample, times in zip(samples, results, strict=True):
            for name, fn in columns.items():
                started = clock()
                out = fn(sample.data)
                times.rounds[name].append((clock() - started) * 1000)
                if isinstance(out, dict):
                    for step, ms in out.items():
                        times.steps.setdefault(f"{name}.{step}", []).append(ms)
    return results


def summed(results: list[Times]) -> Times:
    """Round by round sums over samples (each round's sum is one measurement)."""
    rounds = {
        name: [sum(vals) for vals in zip(*(t.rounds[name] for t in results), strict=True)]
        for name in results[0].rounds
    }
    steps = {
        name: [sum(vals) for vals in zip(*(t.steps[name] for t in results), strict=True)]
        for name in results[0].steps
    }
    return Times(rounds, steps)


def peak_rss_mb() -> float:
    """This process's peak RSS. VmHWM, not ru_maxrss: Linux carries ru_maxrss over from
    the parent through fork and exec, so a child would report the parent's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def concurrent_rss(data: bytes, stages: list[str], photos: int, concurrency: int) -> None:
    configure_pool(concurrency)
    gate = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with gate:
            ctx = StageContext(data, OPTIONS)
            for name in stages:
                await run_stage(get_stage(name), ctx)

    await asyncio.gather(*(one() for _ in range(photos)))


def rss_child(stages: str, path: str) -> float:
    """Peak RSS (MB) of a fresh process running ``stages`` at concurrency 4 on ``path``."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.pipeline_bench", "--rss-child", stages, path],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(json.loads(done.stdout.strip().splitlines()[-1])["rss_mb"])


# --- report -------------------------------------------------------------------------------


def row_line(label: str, times: Times, column: str = "ready", width: int = 40) -> str:
    target = TARGETS.get(label.split(" (")[0])
    cells = [
        f"{label[-width:]:{width}}",
        f"{times.median('floor'):8.1f}",
        f"{times.median(column):8.1f}",
        f"{times.ratio(column, 'floor'):6.2f}",
        f"{'<= ' + format(target, 'g') if target else '':>7}",
    ]
    cells += [f"{times.step(f'{column}.{step}'):8.1f}" for step in STEPS]
    return " ".join(cells)


def header_line() -> str:
    return f"{'input':40} {'floor':>8} {'ready':>8} {'ratio':>6} {'target':>7} " + " ".join(
        f"{step:>8}" for step in STEPS
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=7, help="rounds (medians are reported)")
    parser.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "corpus")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall")
    parser.add_argument("--only", default="", help="rows whose label contains this (e.g. HEIC)")
    parser.add_argument("--no-extras", action="store_true", help="only the per-format table")
    parser.add_argument("--rss-child", nargs=2, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    global clock
    clock = CLOCKS[args.clock]
    configure_vips(OPTIONS)

    if args.rss_child:
        # The photo comes from the parent: generating it here would count in our RSS.
        stages, path = args.rss_child
        data = Path(path).read_bytes()
        asyncio.run(
            concurrent_rss(data, FULL if stages == "full" else DERIVATIVES, photos=8, concurrency=4)
        )
        print(json.dumps({"rss_mb": peak_rss_mb()}))
        return

    large = [s for s in large_inputs(args.corpus) if args.only.lower() in s.label.lower()]
    small = small_inputs(args.corpus) if args.only.lower() in "small photos" else []
    columns: dict[str, Column] = {"floor": floor, "ready": ready}
    print(
        f"{args.clock} ms, median of {args.runs} rounds (floor and ours interleaved in each; "
        f"ratio: median of the rounds' ratios); vips_concurrency={OPTIONS.vips_concurrency}"
    )
    print(header_line())
    for sample, times in zip(large, measure(large, columns, args.runs), strict=True):
        print(row_line(sample.label, times))
    if small:
        each = measure(small, columns, args.runs)
        print(row_line(f"small photos ({len(small)} files <= 1 MP, sum)", summed(each)))
        print("  each:")
        for sample, times in zip(small, each, strict=True):
            print("  " + row_line(sample.label, times, width=38))

    if args.no_extras or args.only:
        return
    jpeg = large[0]
    extras: dict[str, Column] = {
        "floor": floor,
        "vthumb": vips_thumbnail,
        "quick": ours(QUICK),
        "ready": ours(DERIVATIVES),
        "full": ours(FULL),
        "pillow": pillow,
    }
    tool = vipsthumbnail(jpeg.path)
    if tool is not None:
        extras["vipsthumbnail"] = tool
    (twelve,) = measure([jpeg], extras, args.runs)
    print()
    print(f"{jpeg.label}: " + "  ".join(f"{n} {twelve.median(n):.1f}" for n in extras))
    print(f"  quick / floor  = {twelve.ratio('quick', 'floor'):5.2f}")
    print(f"  ready / vthumb = {twelve.ratio('ready', 'vthumb'):5.2f}")
    print(
        f"  full / floor   = {twelve.ratio('full', 'floor'):5.2f}"
        "   (+ full-size WebP, in the follow-up job after the photo is ready)"
    )
    print(f"  pillow / ready = {twelve.ratio('pillow', 'ready'):5.2f}   target >= 1.3")

    # AVIF vs WebP at full size on the 12 MP photo: decides optimize_avif's default.
    encode_ms = {}
    for fmt, effort in (("webp", OPTIONS.optimize_effort), ("avif", OPTIONS.optimize_avif_effort)):
        image = pyvips.Image.new_from_buffer(jpeg.data, "", access="sequential")
        started = time.perf_counter()
        image.write_to_buffer(f".{fmt}", Q=OPTIONS.optimize_quality, effort=effort, keep="none")
        encode_ms[fmt] = (time.perf_counter() - started) * 1000
    ratio = encode_ms["avif"] / encode_ms["webp"]
    print(
        f"full-size encode, 12 MP: webp {encode_ms['webp']:.0f} ms, avif {encode_ms['avif']:.0f} ms"
        f" (avif/webp {ratio:.2f}; AVIF kept only when <= {OPTIONS.optimize_avif_max_time_ratio})"
    )
    heic = next(s for s in large if s.fmt == "heif")
    print(
        "peak RSS, one process, concurrency 4, 8 photos: "
        f"JPEG 12 MP full_processing {rss_child('full', jpeg.path):.0f} MB, "
        f"without optimization {rss_child('derivatives', jpeg.path):.0f} MB; "
        f"HEIC 12 MP without optimization {rss_child('derivatives', heic.path):.0f} MB"
        "   target <= 350"
    )


if __name__ == "__main__":
    main()
