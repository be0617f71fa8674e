"""Reading headers and decoding pixels: the only module that opens image bytes.

Headers are read lazily (libvips opens without computing pixels), so every limit is
checked before a single pixel is allocated. Pixels are decoded with ``fail_on`` so a
truncated or corrupt file raises instead of yielding a half-grey picture.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass

import pillow_heif
import pyvips

from filmstrip.errors import DataError, FilmstripError
from filmstrip.pipeline import icc, transforms
from filmstrip.pipeline.declared import declared_size, ends_early
from filmstrip.pipeline.exif import orientation_from_blob
from filmstrip.pipeline.options import PipelineOptions
from filmstrip.pipeline.png_text import raw_profile_exif
from filmstrip.pipeline.vips import decode_error, describe
from filmstrip.protocols.formats import ACCEPTED

# StageContext.watch: the block computes the image, and a cancelled stage kills it.
Watch = Callable[[pyvips.Image], AbstractContextManager[pyvips.Image]]

_LOADER_FORMAT = {
    "jpegload": "jpeg",
    "pngload": "png",
    "webpload": "webp",
    "gifload": "gif",
    "tiffload": "tiff",
    "heifload": "heif",
}

_NAMES = {
    "jpeg": "JPEG",
    "png": "PNG",
    "webp": "WebP",
    "gif": "GIF",
    "tiff": "TIFF",
    "heif": "HEIC",
    "avif": "AVIF",
}

_OTHER_MAGIC = (
    (b"%PDF", "a PDF document"),
    (b"<svg", "an SVG drawing"),
    (b"<?xml", "an XML (possibly SVG) document"),
    (b"<!doctype html", "an HTML page"),
    (b"<html", "an HTML page"),
    (b"BM", "a BMP image"),
    (b"8BPS", "a Photoshop document"),
)

ORIENTATION_SWAPS = frozenset({5, 6, 7, 8})


def format_name(fmt: str) -> str:
    """The human name of one of our format ids."""
    return _NAMES.get(fmt, fmt.upper())


def what_is(head: bytes) -> str:
    """A human guess at what a file we refuse is, for error messages."""
    low = head.lstrip()[:64].lower()
    for magic, name in _OTHER_MAGIC:
        if low.startswith(magic.lower()):
            return name
    return "not an image format we accept"


@dataclass(frozen=True, slots=True)
class Header:
    """What the file claims about itself, read without decoding pixels."""

    format: str  # one of ACCEPTED
    loader: str
    width: int  # as stored, before orientation
    height: int  # one frame
    frames: int
    orientation: int  # EXIF orientation 1-8 (1 when absent or invalid)
    # The orientation came from where libvips does not look (a PNG's raw profile text
    # chunk): libvips will not turn the pixels by itself, the decoders here do.
    orientation_unseen: bool
    bands: int
    interpretation: str
    has_alpha: bool
    exif: bytes | None
    icc: bytes | None

    @property
    def pixels(self) -> int:
        return self.width * self.height

    @property
    def display_size(self) -> tuple[int, int]:
        """Width and height after the EXIF orientation is applied."""
        if self.orientation in ORIENTATION_SWAPS:
            return self.height, self.width
        return self.width, self.height

    @property
    def animated(self) -> bool:
        return self.frames > 1 and self.format in ("gif", "webp")


def read_header(data: bytes, fmt: str, options: PipelineOptions) -> Header:
    """Open ``data`` lazily with libvips and read its header; no pixels are decoded."""
    return open_header(data, fmt, options)[0]


def open_header(data: bytes, fmt: str, options: PipelineOptions) -> tuple[Header, pyvips.Image]:
    """The header, and the lazily opened image it was read from (no pixels decoded): a
    decode that would open ``data`` the same way reuses it instead of reading it again."""
    what = f"this {format_name(fmt)} file"
    try:
        image = pyvips.Image.new_from_buffer(data, "", access="sequential", fail_on=options.fail_on)
        loader = str(image.get("vips-loader"))
        family = _LOADER_FORMAT.get(loader.removesuffix("_buffer").removesuffix("_source"))
        heif_compression = _get_str(image, "heif-compression")
        frames = _get_int(image, "n-pages") or 1
        orientation = _get_int(image, "orientation") or 1
        exif = _get_blob(image, "exif-data")
        unseen = False
        if exif is None and fmt == "png":
            exif = raw_profile_exif(data)
            if exif is not None:
                orientation, unseen = orientation_from_blob(exif), True
        header = Header(
            format=fmt,
            loader=loader,
            width=image.width,
            height=image.height,
            frames=frames,
            orientation=orientation if 1 <= orientation <= 8 else 1,
            orientation_unseen=unseen,
            bands=image.bands,
            interpretation=str(image.interpretation),
            has_alpha=bool(image.hasalpha()),
            exif=exif,
            icc=_get_blob(image, "icc-profile-data"),
        )
    except pyvips.Error as exc:
        # The decoder's own limits and checks can fire before ours could: a size the
        # header declares says what is wrong better than the decoder's message.
        declared = declared_size(data, fmt)
        if declared is not None:
            check_size(format_name(fmt), *declared, options)
        raise decode_error(exc, what) from None
    if (
        family is None
        or (family == "heif") != (fmt in ("heif", "avif"))
        or (family != "heif" and family != fmt)
    ):
        raise DataError(
            f"the file looks like {format_name(fmt)} but libvips read it as {loader}",
            code="unsupported_type",
        )
    if fmt == "avif" and heif_compression not in (None, "av1"):
        raise DataError(f"AVIF file with {heif_compression} compression", code="corrupt_image")
    return header, image


def check_limits(header: Header, options: PipelineOptions) -> None:
    """Refuse images whose declared size would cost too much to decode."""
    name = format_name(header.format)
    check_size(name, header.width, header.height, options)
    if header.frames > options.max_frames:
        raise DataError(
            f"the {name} image has {header.frames} frames, over the limit of {options.max_frames}",
            code="too_many_frames",
        )


def check_size(name: str, width: int, height: int, options: PipelineOptions) -> None:
    """Refuse a ``name`` image (``JPEG``…) declaring no pixels, or too many to decode."""
    if width <= 0 or height <= 0:
        raise DataError(
            f"the {name} image is {width}x{height}: it declares no pixels", code="corrupt_image"
        )
    if max(width, height) > options.max_dimension:
        raise DataError(
            f"the {name} image is {width}x{height}: an edge is longer than the "
            f"limit of {options.max_dimension} px",
            code="too_large_dimension",
        )
    if width * height > options.max_pixels:
        raise DataError(
            f"the {name} image is {width}x{height} "
            f"({width * height / 1e6:.1f} MP), over the limit of {options.max_pixels / 1e6:g} MP",
            code="too_many_pixels",
        )


def decode_rendition(
    data: bytes,
    header: Header,
    options: PipelineOptions,
    watch: Watch,
    opened: pyvips.Image | None = None,
) -> pyvips.Image:
    """The one decode: first frame, upright, sRGB, 8-bit, longest edge at most
    ``options.rendition_size`` (never enlarged), in memory. Shrink-on-load where the
    codec can (JPEG DCT scaling, WebP, pyramid TIFF). ``opened``: the image
    :func:`open_header` read ``header`` from, not yet decoded."""
    size = options.rendition_size
    what = f"this {format_name(header.format)} file"
    try:
        if header.format == "jpeg":
            return _jpeg_rendition(data, header, options, watch, opened)
        if header.format == "heif":
            image = _heif_pixels(data, what).thumbnail_image(size, height=size, size="down")
        else:
            image = pyvips.Image.thumbnail_buffer(
                data, size, height=size, size="down", option_string=f"fail_on={options.fail_on}"
            )
        with watch(to_srgb8(image)) as computing:
            image = computing.copy_memory()
        if header.orientation_unseen:
            # thumbnail turned what libvips saw, which was nothing; the box is square, so
            # turning the small image now gives the same result.
            image = upright(image, header).copy_memory()
        return image
    except pyvips.Error as exc:
        raise _pixels_error(exc, what, data, header.format) from None


def decodes_opened(header: Header, options: PipelineOptions) -> bool:
    """Whether :func:`decode_rendition` decodes the image :func:`open_header` opened (a
    JPEG without DCT shrink) rather than opening the bytes again. Only then is that image
    worth keeping: an unused one holds libjpeg's state through the decode (+10 MB peak
    RSS at concurrency 4 on 12 MP photos)."""
    return header.format == "jpeg" and jpeg_shrink(header, options.rendition_size) == 1


def jpeg_shrink(header: Header, size: int) -> int:
    """The largest libjpeg DCT-domain shrink (1, 2, 4 or 8) that still decodes at least
    ``size`` px on the longer edge: the decode does 1/shrink^2 of the IDCT work."""
    longest = max(header.width, header.height)
    for shrink in (8, 4, 2):
        if -(-longest // shrink) >= size:
            return shrink
    return 1


def _jpeg_rendition(
    data: bytes,
    header: Header,
    options: PipelineOptions,
    watch: Watch,
    opened: pyvips.Image | None,
) -> pyvips.Image:
    # libvips' thumbnail only shrinks on load by half the factor it could (it keeps
    # headroom for its filter), so a 12 MP photo is decoded at full size for a 1440 px
    # preview. Scaled IDCT then Lanczos is what Pillow's draft mode does, at a third of
    # the cost, and looks the same at these sizes.
    size = options.rendition_size
    shrink = jpeg_shrink(header, size)
    if opened is not None and decodes_opened(header, options):
        # Opened as it would be here (sequential, fail_on): reading the header and
        # EXIF again cost a tenth of a small photo's decode.
        image = opened
    else:
        image = pyvips.Image.new_from_buffer(
            data, "", shrink=shrink, access="sequential", fail_on=options.fail_on
        )
    scale = size / max(image.width, image.height)
    image = to_srgb8(image)
    if scale < 1.0:
        image = image.resize(scale, kernel="lanczos3")
    with watch(image) as computing:
        image = computing.copy_memory()
    if header.orientation != 1:
        # Rotating needs the whole image; it is small and in memory by now.
        image = upright(image, header).copy_memory()
    return image


def decode_full(
    data: bytes, header: Header, options: PipelineOptions, *, all_frames: bool
) -> pyvips.Image:
    """The whole image at full size, upright and sRGB, lazily (pixels flow when saved)."""
    what = f"this {format_name(header.format)} file"
    try:
        if header.format == "heif":
            return to_srgb8(_heif_pixels(data, what))
        # Rotating needs random access; upright photos stream top to bottom.
        access = "sequential" if header.orientation == 1 else "random"
        kwargs: dict[str, object] = {"access": access, "fail_on": options.fail_on}
        if all_frames:
            kwargs["n"] = -1
        image = pyvips.Image.new_from_buffer(data, "", **kwargs)
        return to_srgb8(upright(image, header))
    except pyvips.Error as exc:
        raise _pixels_error(exc, what, data, header.format) from None


def _pixels_error(exc: BaseException, what: str, data: bytes, fmt: str) -> FilmstripError:
    """:func:`decode_error` for a failed pixel decode, told a file that stops early."""
    error = decode_error(exc, what)
    if error.code == "corrupt_image" and ends_early(data, fmt):
        return DataError(
            f"{what} is truncated or its data ends early ({describe(exc)})",
            code="truncated_image",
        )
    return error


def upright(image: pyvips.Image, header: Header) -> pyvips.Image:
    """``image`` turned as ``header.orientation`` says, wherever the file kept it."""
    if header.orientation == 1:
        return image
    if header.orientation_unseen:
        image = image.copy()
        image.set_type(pyvips.GValue.gint_type, "orientation", header.orientation)
    return image.autorot()


def to_srgb8(image: pyvips.Image) -> pyvips.Image:
    """Convert to 8-bit sRGB (or 8-bit grey), through the embedded ICC profile if any."""
    embedded = _embedded_transform(image)
    if (embedded or str(image.interpretation) == "cmyk") and (
        image.width * image.height <= transforms.MAX_PIXELS
    ):
        # Building the transform costs 17 ms (CMYK) where converting a small photo costs 1.
        profile = _get_blob(image, "icc-profile-data") if embedded else None
        return transforms.convert(image, profile, _to_srgb8)
    return _to_srgb8(image)


def _embedded_transform(image: pyvips.Image) -> bool:
    """Whether :func:`to_srgb8` converts ``image`` through its embedded profile."""
    interpretation = str(image.interpretation)
    return (
        image.get_typeof("icc-profile-data") != 0
        and interpretation != "b-w"
        # Building the transform costs as much as decoding a small photo; for the sRGB
        # profile most cameras embed it would change nothing.
        and not (interpretation == "srgb" and icc.is_srgb(_get_blob(image, "icc-profile-data")))
    )


def _to_srgb8(image: pyvips.Image) -> pyvips.Image:
    if _embedded_transform(image):
        # A broken embedded profile must not sink the photo: fall back to the
        # colourspace maths below, as browsers do.
        with contextlib.suppress(pyvips.Error):
            image = image.icc_transform("srgb", embedded=True, intent="perceptual")
    grey = image.bands in (1, 2) and str(image.interpretation) in ("b-w", "grey16")
    target = "b-w" if grey else "srgb"
    if str(image.interpretation) != target or image.format != "uchar":
        image = image.colourspace(target)
    if image.format != "uchar":
        image = image.cast("uchar")
    return image


def _heif_pixels(data: bytes, what: str) -> pyvips.Image:
    # The bundled libvips has no HEVC decoder; libheif inside pillow-heif has one. The
    # container transforms (irot/imir) are applied by libheif, so the pixels are upright.
    try:
        heif = pillow_heif.open_heif(data, convert_hdr_to_8bit=True)
        mode = heif.mode
        width, height = heif.size
        bands = {"RGB": 3, "RGBA": 4, "L": 1, "LA": 2}.get(mode)
        if bands is None:
            raise DataError(f"{what} has an unsupported pixel mode {mode}", code="corrupt_image")
        stride = heif.stride
        # Zero copy: copying 36 MB into a bytes object would hold the GIL (and so stall
        # the event loop) for ~80 ms. Padded rows become a wider image, cropped below.
        pixels = memoryview(heif.data)
        icc = heif.info.get("icc_profile")
    except (RuntimeError, ValueError, OSError, TypeError) as exc:
        raise decode_error(exc, what) from None
    if stride % bands:
        raise DataError(f"{what} has an unusual row layout", code="corrupt_image")
    image = pyvips.Image.new_from_memory(pixels, stride // bands, height, bands, "uchar")
    if stride // bands != width:
        image = image.crop(0, 0, width, height)
    image = image.copy(interpretation="srgb" if bands >= 3 else "b-w")
    if icc:
        image.set_type(pyvips.GValue.blob_type, "icc-profile-data", bytes(icc))
    return image


def _get_int(image: pyvips.Image, name: str) -> int | None:
    if image.get_typeof(name) == 0:
        return None
    try:
        return int(image.get(name))
    except (TypeError, ValueError):
        return None


def _get_str(image: pyvips.Image, name: str) -> str | None:
    if image.get_typeof(name) == 0:
        return None
    return str(image.get(name))


def _get_blob(image: pyvips.Image, name: str) -> bytes | None:
    if image.get_typeof(name) == 0:
        return None
    value = image.get(name)
    return bytes(value) if value else None


__all__ = [
    "ACCEPTED",
    "Header",
    "check_limits",
    "check_size",
    "decode_full",
    "decode_rendition",
    "decodes_opened",
    "open_header",
    "read_header",
]
