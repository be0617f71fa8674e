"""Every file of the shared corpus through the real pipeline.

Real files: derivatives of the right size, upright (pixels compared with Pillow's
``exif_transpose`` of the original), sRGB, free of metadata; EXIF as in the manifest.
Bad files: a DATA error with a readable reason, or, for the files the manifest leaves to
policy, the outcome we chose (see ACCEPTED_BAD); the process keeps serving afterwards.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any, NoReturn

import msgspec
import pytest
import pyvips
from PIL import Image

from filmstrip.errors import Category, DataError
from filmstrip.pipeline import PipelineOptions, context, decode
from filmstrip.pipeline.context import StageContext
from filmstrip.pipeline.decode import read_header
from filmstrip.pipeline.stages import optimization
from filmstrip.protocols.formats import sniff_format
from tests.conftest import CORPUS
from tests.pipeline.conftest import run_pipeline
from tests.pipeline.reference import difference, open_rgb


def _entries(kind: str) -> list[Any]:
    manifest = CORPUS / "manifest.json"
    if not manifest.is_file():
        return [pytest.param(None, marks=pytest.mark.skip(reason="corpus absent"))]
    entries = [e for e in json.loads(manifest.read_text()) if e["kind"] == kind]
    return [pytest.param(e, id=e["path"]) for e in entries]


# Files filed under bad/ that are valid enough to process, by policy:
ACCEPTED_BAD = {
    "bad/broken-exif-tag.jpg": (1, 1),  # pixels fine; the broken EXIF tag is skipped
    "bad/jpeg_with_png_extension.png": (320, 240),  # content decides, never the name
    "bad/panic.webp": (100, 30),  # a valid WebP that crashed another decoder
    "bad/png_decompression_dos.png": (1, 1),  # text chunks are never inflated by us
    "bad/sugarshack_bad_mpo_header.jpg": (640, 480),  # the base JPEG is intact
    "bad/truncated_end_chunk.png": (128, 128),  # every pixel is present; only IEND is cut
}
# The rest are refused, and these among them by our strict (fail_on=warning) decode:
# hopper_bad_exif.jpg, truncated_app14.jpg (libjpeg: corrupt data), xcsn0g01.png (bad
# CRC), invalid_multiframe.gif (a broken frame).

# What each refused file gets, the code saying what is wrong with it (a client shows or
# acts on it; the api gives the same code for the same fault): the decoder's own message
# said "truncated" of a zero-width or oversized GIF, and "too_large" (the api's code for a
# file over the byte limit) of a JPEG edge over 65500 px.
REFUSED = {
    "bad/16384x16384.png": "too_many_pixels",
    "bad/17000x17000.avif": "too_many_pixels",
    "bad/BlueSquare_truncated.jpg": "truncated_image",
    "bad/bmp-invalid-bpp.bmp": "unsupported_type",
    "bad/bomb_30000x30000.png": "too_many_pixels",
    "bad/broken_data_stream.png": "corrupt_image",  # whole chunks, garbage in the stream
    # It seeks past its own end.
    "bad/crash-0c7e0e8e11ce787078f00b5b0ca409a167f070e0.tif": "truncated_image",
    "bad/decompression_bomb.gif": "too_large_dimension",  # a 65535 px frame: 65535x66601
    "bad/derive-huffman-codes-overflow.jpg": "corrupt_image",
    "bad/empty.jpg": "empty_file",
    "bad/hopper_bad_exif.jpg": "corrupt_image",
    "bad/html_with_script.jpg": "unsupported_type",
    "bad/image_invalid.jpg": "unsupported_type",
    "bad/invalid_multiframe.gif": "corrupt_image",
    "bad/max_size.jpg": "too_large_dimension",  # 65535x65535
    "bad/missing-sof.jpg": "truncated_image",  # SOI and nothing after it
    "bad/missing-sos.jpg": "corrupt_image",
    "bad/null_height.jpg": "corrupt_image",  # 0 px wide: no pixels
    "bad/oom-225817ca0f8c663be7ab4b9e717b02c661e66834.tif": "corrupt_image",
    "bad/photo.jpg": "unsupported_type",
    "bad/script.svg": "unsupported_type",
    "bad/truncated.gif": "truncated_image",
    "bad/truncated_app14.jpg": "corrupt_image",
    "bad/truncated_image.png": "truncated_image",  # cut inside IDAT: libpng says "read error"
    "bad/truncated_jpeg.jpg": "truncated_image",
    "bad/xcsn0g01.png": "corrupt_image",
    "bad/xd9n2c08.png": "corrupt_image",
    "bad/xdtn0g01.png": "corrupt_image",
    "bad/xhdn0g08.png": "corrupt_image",
    "bad/xs1n0g01.png": "unsupported_type",
    "bad/zero_width.gif": "corrupt_image",  # a 0 px wide screen: no pixels
}
# Where the manifest's ``expect`` names the fault, the code that names it (first match).
MANIFEST_SAYS = (
    ("pixel limit", "too_many_pixels"),
    ("dimensions over limit", "too_large_dimension"),
    ("zero-size", "corrupt_image"),
    ("zero height", "corrupt_image"),
    ("empty upload", "empty_file"),
    ("not an image", "unsupported_type"),
    ("reject: truncated", "truncated_image"),
)


def _fit(width: int, height: int, box: int) -> tuple[int, int]:
    scale = min(1.0, box / max(width, height))
    return round(width * scale), round(height * scale)


def _assert_no_metadata(data: bytes, where: str) -> None:
    image = pyvips.Image.new_from_buffer(data, "")
    fields = set(image.get_fields())
    leaked = fields & {"exif-data", "xmp-data", "iptc-data", "icc-profile-data"}
    assert not leaked, f"{where} carries {leaked}"
    assert b"Exif\x00\x00" not in data, f"{where} carries an EXIF block"


@pytest.mark.parametrize("entry", _entries("real"))
def test_real_file(entry: dict[str, Any], options: PipelineOptions, corpus: Path) -> None:
    data = (corpus / entry["path"]).read_bytes()
    ctx = run_pipeline(data, options, "full_processing")
    md = ctx.metadata
    width, height = entry["display_width"], entry["display_height"]

    assert (md["width"], md["height"]) == (width, height)
    assert md["bytes"] == entry["bytes"] and md["sha256"] == entry["sha256"]
    # Wherever the file keeps it (a PNG's ImageMagick text chunk too); 0 is out of range.
    assert md["orientation"] == (entry["exif_orientation"] or 1)
    assert md["format"] == {"heic": "heif", "mpo (jpeg)": "jpeg"}.get(
        entry["format"], entry["format"]
    )
    if entry["format"] in ("gif", "webp") and entry.get("frames"):
        assert md["frames"] == entry["frames"] and md["animated"] is True
    exif = md["exif"]
    if "camera_make" in entry:
        assert exif.get("make") == entry["camera_make"]
        assert exif.get("model") == entry["camera_model"]
    assert ("gps" in exif) == entry["gps"], exif
    if entry["gps"]:
        assert set(exif["gps"]) >= {"lat", "lon"}
    assert len(md["phash"]) == 16 and md["thumbhash"]
    json.dumps(md)  # the catalog stores it as JSON

    for name, box in (("preview", options.preview_size), ("thumbnail", options.thumbnail_size)):
        derivative = ctx.derivatives[name]
        want = _fit(width, height, box)
        assert abs(derivative.width - want[0]) <= 1 and abs(derivative.height - want[1]) <= 1
        decoded = pyvips.Image.new_from_buffer(derivative.data, "")
        assert (decoded.width, decoded.height) == (derivative.width, derivative.height)
        assert decoded.get_typeof("n-pages") == 0 or decoded.get("n-pages") == 1
        _assert_no_metadata(derivative.data, f"{entry['path']} {name}")

    optimization = md["optimization"]
    if optimization["kept"]:
        optimized = ctx.derivatives["optimized"]
        assert (optimized.width, optimized.height) == (width, height)
        assert len(optimized.data) <= entry["bytes"] * (1 - options.optimize_min_saving)
        assert optimization["bytes_saved"] == entry["bytes"] - len(optimized.data)
        _assert_no_metadata(optimized.data, f"{entry['path']} optimized")
    else:
        assert "optimized" not in ctx.derivatives and optimization["bytes_saved"] == 0

    _assert_upright(entry, data, ctx)


@pytest.mark.parametrize(("preview", "thumbnail"), [("png", "avif"), ("avif", "png")])
def test_every_derivative_format_drops_the_metadata(
    preview: str, thumbnail: str, options: PipelineOptions, corpus: Path
) -> None:
    """The PNG and AVIF a deployment may choose for its renditions carry no EXIF (GPS) either;
    the defaults (JPEG, WebP) are checked on every file above."""
    data = (corpus / "real/FujiFilm_FinePixS2Pro.jpg").read_bytes()  # small, with GPS
    chosen = msgspec.structs.replace(options, preview_format=preview, thumbnail_format=thumbnail)
    assert read_header(data, "jpeg", options).exif  # which the derivatives must not keep
    ctx = run_pipeline(data, chosen, "quick_processing")
    for name, fmt in (("preview", preview), ("thumbnail", thumbnail)):
        assert ctx.derivatives[name].ext == fmt
        _assert_no_metadata(ctx.derivatives[name].data, f"{fmt} {name}")


def _assert_upright(entry: dict[str, Any], data: bytes, ctx: StageContext) -> None:
    ours = Image.open(io.BytesIO(ctx.derivatives["preview"].data)).convert("RGB")
    if entry["path"] == "real/red-at-12-oclock-with-color-profile.jpg":
        # The embedded profile spins hues: only a colour-managed decode puts red on top.
        thumb = Image.open(io.BytesIO(ctx.derivatives["thumbnail"].data)).convert("RGB")
        r, g, b = thumb.getpixel((thumb.width // 2, round(thumb.height * 0.06)))  # type: ignore[misc]
        assert r > 180 and g < 110 and b < 110, (r, g, b)
        return
    if entry["format"] == "jpeg" and "cmyk" in entry["path"]:
        # Pillow's CMYK conversion is naive; compare structure, not colour.
        reference = open_rgb(data).convert("L")
        assert difference(ours.convert("L"), reference) < 40
        return
    reference = open_rgb(data)
    assert (
        reference.size == (ours.width, ours.height)
        or abs(reference.width / reference.height - ours.width / ours.height) < 0.01
    )
    upright = difference(ours, reference)
    assert upright < 12, f"preview differs from the upright original by {upright:.1f}"
    # The check must be able to fail: the picture turned over is far from ours.
    turned = difference(ours, reference.rotate(180))
    if turned > 2 * upright + 8:
        assert upright < turned


@pytest.mark.parametrize("entry", _entries("bad"))
def test_bad_file(entry: dict[str, Any], options: PipelineOptions, corpus: Path) -> None:
    data = (corpus / entry["path"]).read_bytes()
    if entry["path"] in ACCEPTED_BAD:
        ctx = run_pipeline(data, options, "full_processing")
        assert (ctx.metadata["width"], ctx.metadata["height"]) == ACCEPTED_BAD[entry["path"]]
        assert set(ctx.derivatives) >= {"thumbnail", "preview"}
    else:
        with pytest.raises(DataError) as info:
            run_pipeline(data, options, "full_processing")
        error = info.value
        assert error.category is Category.DATA
        assert error.code == REFUSED[entry["path"]], error.message
        # A reason a person can act on, without libvips call-site noise or a raw repr.
        assert len(error.message) > 15 and "unable to call" not in error.message
        assert "Vips" not in error.message.split("(")[0]
    # The process keeps serving: the next photo still goes through.
    good = (corpus / "real/hopper.tif").read_bytes()
    assert run_pipeline(good, options, "quick_processing").derivatives["thumbnail"].width == 128


def test_the_codes_say_what_the_manifest_says(corpus: Path) -> None:
    """Every refused bad file has a pinned code, the one its manifest entry names if any."""
    entries = json.loads((corpus / "manifest.json").read_text())
    bad = {e["path"]: e for e in entries if e["kind"] == "bad"}
    assert set(REFUSED) == bad.keys() - ACCEPTED_BAD.keys()
    named = 0
    for path, code in REFUSED.items():
        said = next((c for words, c in MANIFEST_SAYS if words in bad[path]["expect"]), None)
        if said is not None:
            named += 1
            assert code == said, (path, bad[path]["expect"])
    assert named >= 15  # the manifest names the fault of most of them


def _forbid_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every pixel decode fail the test, so a refusal proves the header sufficed."""

    def decoded(*args: object, **kwargs: object) -> NoReturn:
        raise AssertionError("pixels were decoded before the limits were checked")

    for module in (decode, context, optimization):
        for name in ("decode_rendition", "decode_full", "_heif_pixels"):
            if hasattr(module, name):
                monkeypatch.setattr(module, name, decoded)


@pytest.mark.parametrize(
    ("name", "code"),
    [("16384x16384.png", "too_many_pixels"), ("bomb_30000x30000.png", "too_many_pixels"),
     ("17000x17000.avif", "too_many_pixels"), ("max_size.jpg", "too_large_dimension"),
     ("decompression_bomb.gif", "too_large_dimension"), ("zero_width.gif", "corrupt_image")],
)  # fmt: skip
def test_bombs_are_refused_from_the_header(
    name: str, code: str, options: PipelineOptions, corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _forbid_decoding(monkeypatch)
    with pytest.raises(DataError) as info:
        run_pipeline((corpus / "bad" / name).read_bytes(), options, "quick_processing")
    assert info.value.code == code
    assert any(word in info.value.message for word in ("MP", "65500", "no pixels"))


@pytest.mark.parametrize(
    "name",
    ["Landscape_1.jpg", "plum-blossom-large.png", "Nikon_D1X.webp", "hopper.tif", "iss634.gif",
     "exif.avif", "exif-at-eof.heic"],
)  # fmt: skip
def test_every_format_is_held_to_the_limits_before_decoding(
    name: str, options: PipelineOptions, corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = (corpus / "real" / name).read_bytes()
    header = read_header(data, sniff_format(data[:64]) or "", options)
    _forbid_decoding(monkeypatch)
    at_limits = msgspec.structs.replace(
        options,
        max_pixels=header.pixels,
        max_dimension=max(header.width, header.height),
        max_frames=header.frames,
    )
    for within in (options, at_limits):  # a limit is the most allowed, not the least refused
        with pytest.raises(AssertionError, match="decoded"):  # within the limits: decoded
            run_pipeline(data, within, "quick_processing")
    for limit, code in (
        ({"max_pixels": header.pixels - 1}, "too_many_pixels"),
        ({"max_dimension": max(header.width, header.height) - 1}, "too_large_dimension"),
        ({"max_frames": header.frames - 1}, "too_many_frames"),
    ):
        with pytest.raises(DataError) as info:
            run_pipeline(data, msgspec.structs.replace(options, **limit), "quick_processing")
        assert info.value.code == code, limit


def test_idempotent(options: PipelineOptions, corpus: Path) -> None:
    """Jobs are delivered at least once: a rerun writes the same bytes and values."""
    data = (corpus / "real/Samsung_GT-I9000.jpg").read_bytes()
    first = run_pipeline(data, options, "full_processing")
    second = run_pipeline(data, options, "full_processing")
    assert first.metadata == second.metadata
    assert first.derivatives == second.derivatives
    # and a stage run twice on one context leaves the same result
    from filmstrip.pipeline.registry import get_stage

    get_stage("thumbnails").run(second)
    get_stage("optimization").run(second)
    assert first.derivatives == second.derivatives and first.metadata == second.metadata
