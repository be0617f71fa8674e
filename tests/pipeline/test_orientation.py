"""Every rendition is upright: thumbnail, preview, the optimised full-size copy and its
AVIF candidate, for all eight EXIF orientations, in JPEG and in other containers.

Upright means: as the original is displayed (Pillow's ``exif_transpose``, an independent
decoder), and closer to that than to any of the seven other ways the picture can be
turned or mirrored, so a rendition turned 180 degrees or mirrored fails.
"""

from __future__ import annotations

import io
import zlib
from pathlib import Path

import msgspec
import pillow_heif
import pytest
import pyvips
from PIL import Image, ImageOps

from filmstrip.pipeline import PipelineOptions
from filmstrip.pipeline.decode import read_header
from filmstrip.pipeline.stages.optimization import Optimization
from tests.pipeline.conftest import run_pipeline
from tests.pipeline.reference import difference, open_rgb

T = Image.Transpose
# The eight ways a picture can be stored, as Pillow transposes the upright one.
TURNS: dict[str, T | None] = {
    "upright": None,
    "mirrored": T.FLIP_LEFT_RIGHT,
    "turned 180": T.ROTATE_180,
    "flipped": T.FLIP_TOP_BOTTOM,
    "transposed": T.TRANSPOSE,
    "turned 90 cw": T.ROTATE_270,
    "transversed": T.TRANSVERSE,
    "turned 90 ccw": T.ROTATE_90,
}

# Landscape_n / Portrait_n: one picture stored with EXIF orientation n (pixels turned to match).
JPEGS = [f"Landscape_{n}" for n in range(1, 9)] + [f"Portrait_{n}" for n in (1, 3, 6, 8)]
# Other containers, made in the test from Landscape_n's stored pixels and its orientation.
OTHER = {"webp": ".webp[Q=90]", "png": ".png[compression=1]", "tiff": ".tif"}


def _displayed(data: bytes) -> Image.Image:
    """A rendition as a viewer shows it: honouring any orientation it still carries."""
    with Image.open(io.BytesIO(data)) as image:
        return ImageOps.exif_transpose(image).convert("RGB")


def _orientation(data: bytes) -> int:
    with Image.open(io.BytesIO(data)) as image:
        return int(image.getexif().get(0x0112, 1))


def _in_container(jpeg: bytes, save_as: str) -> bytes:
    """The JPEG's stored pixels (not turned) at a third of the size, with its EXIF
    orientation, in another container."""
    stored = pyvips.Image.new_from_buffer(jpeg, "")
    return bytes(stored.resize(1 / 3).write_to_buffer(save_as, keep="exif"))


def _assert_upright(name: str, data: bytes, reference: Image.Image) -> None:
    shown = _displayed(data)
    ratio = reference.width / reference.height
    assert abs(shown.width / shown.height - ratio) < 0.02, f"{name} is {shown.size}"
    # Squashed to a square first (as difference() does), so turning it costs nothing.
    shown, reference = (i.resize((72, 72), Image.Resampling.BOX) for i in (shown, reference))
    distance = {
        turn: difference(shown, reference if how is None else reference.transpose(how))
        for turn, how in TURNS.items()
    }
    nearest = min(distance, key=lambda turn: distance[turn])
    assert nearest == "upright" and distance["upright"] < 10, (
        f"{name} looks {nearest}: " + ", ".join(f"{t} {d:.1f}" for t, d in distance.items())
    )


def _check_every_rendition(data: bytes, reference: Image.Image, options: PipelineOptions) -> None:
    # Every smaller optimised copy kept (some of these save less than the default minimum):
    # its orientation is what is checked here.
    ctx = run_pipeline(
        data, msgspec.structs.replace(options, optimize_min_saving=0), "full_processing"
    )
    # Optimised copies larger than the original are dropped; these files all shrink.
    assert set(ctx.derivatives) == {"thumbnail", "preview", "optimized"}
    for name, derivative in ctx.derivatives.items():
        _assert_upright(name, derivative.data, reference)
    # The AVIF candidate the stage keeps instead when it is smaller (optimize_avif).
    avif, _ = Optimization().encode(ctx, "avif", options.optimize_avif_effort, animated=False)
    _assert_upright("optimized_avif", avif.data, reference)


@pytest.mark.parametrize("photo", JPEGS)
def test_jpeg_renditions_are_upright(photo: str, options: PipelineOptions, corpus: Path) -> None:
    data = (corpus / f"real/{photo}.jpg").read_bytes()
    _check_every_rendition(data, open_rgb(data), options)


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("container", OTHER)
def test_other_containers_renditions_are_upright(
    container: str, orientation: int, options: PipelineOptions, corpus: Path
) -> None:
    jpeg = (corpus / f"real/Landscape_{orientation}.jpg").read_bytes()
    data = _in_container(jpeg, OTHER[container])
    assert _orientation(data) == orientation  # the file says how to turn it
    _check_every_rendition(data, open_rgb(jpeg), options)


def _with_raw_profile(png: bytes, exif: bytes, chunk: bytes) -> bytes:
    """``png`` with ``exif`` as ImageMagick writes it, a "Raw profile type exif" text chunk
    (hex in lines of 72), right after IHDR."""
    hexed = exif.hex()
    text = (
        b"\nexif\n%8d\n" % len(exif)
        + "\n".join(hexed[i : i + 72] for i in range(0, len(hexed), 72)).encode()
        + b"\n"
    )
    keyword = b"Raw profile type exif\x00"
    body = {
        b"tEXt": keyword + text,
        b"zTXt": keyword + b"\x00" + zlib.compress(text),
        b"iTXt": keyword + b"\x01\x00" + b"\x00\x00" + zlib.compress(text),
    }[chunk]
    crc = zlib.crc32(chunk + body).to_bytes(4, "big")
    at = 8 + 25  # signature, then IHDR (length, type, 13 bytes, CRC)
    return png[:at] + len(body).to_bytes(4, "big") + chunk + body + crc + png[at:]


@pytest.mark.parametrize(
    ("orientation", "chunk"),
    [(n, b"zTXt") for n in range(1, 9)] + [(6, b"tEXt"), (8, b"iTXt")],
)
def test_a_png_whose_orientation_is_in_an_imagemagick_text_chunk_is_turned(
    orientation: int, chunk: bytes, options: PipelineOptions, corpus: Path
) -> None:
    jpeg = (corpus / f"real/Landscape_{orientation}.jpg").read_bytes()
    stored = pyvips.Image.new_from_buffer(jpeg, "")
    png = bytes(stored.resize(1 / 3).write_to_buffer(".png[compression=1]", keep="none"))
    exif = bytes(stored.get("exif-data"))
    data = _with_raw_profile(png, exif, chunk)
    assert pyvips.Image.new_from_buffer(data, "").get_typeof("orientation") == 0  # unseen
    header = read_header(data, "png", options)
    assert (header.orientation, header.exif) == (orientation, exif)
    _check_every_rendition(data, open_rgb(jpeg), options)


@pytest.mark.parametrize("orientation", [2, 3, 6, 8])
def test_a_heic_is_turned_by_its_container_and_not_again_by_its_exif(
    orientation: int, options: PipelineOptions, corpus: Path
) -> None:
    # As phones write them: the turn as the container's irot/imir and EXIF's orientation
    # too. HEIF's rule (libheif's, browsers'): the container's turn, once.
    jpeg = (corpus / f"real/Landscape_{orientation}.jpg").read_bytes()
    with Image.open(io.BytesIO(jpeg)) as image:
        small, exif = image.resize((image.width // 4, image.height // 4)), image.info["exif"]
    buffer = io.BytesIO()
    small.save(buffer, format="HEIF", quality=80, exif=exif)
    data = buffer.getvalue()
    stored = Image.Exif()
    stored.load(pillow_heif.open_heif(data).info["exif"])
    assert stored.get(0x0112) == orientation  # the EXIF still says to turn it
    ctx = run_pipeline(data, options, "full_processing")
    assert ctx.metadata["orientation"] == 1  # turned already, by the container
    for name in ("thumbnail", "preview"):
        _assert_upright(name, ctx.derivatives[name].data, open_rgb(jpeg))
