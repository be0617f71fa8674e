"""Colour transforms kept by profile, so a profile already seen costs no new lcms set-up.

lcms builds a transform from a profile in ~17 ms (libvips' 1 MB default CMYK profile), a
fixed tax that is most of a small CMYK photo's ready path; libvips keeps none between
images. A transform is kept per (profile, pixel layout), the few most recent ones.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable

import pyvips

from filmstrip.compat.pyvips import Rerunnable

#: Photos up to this many pixels are converted through a kept transform. Their pixels are
#: held in memory to go through it (4 bytes a pixel for CMYK); larger photos stream
#: through a transform of their own, whose set-up is small beside their decode.
MAX_PIXELS = 2_100_000
#: Transforms kept at once: each holds lcms' precomputed table and its profile (~1.5 MB).
KEPT = 8

_kept: OrderedDict[tuple[object, ...], Rerunnable] = OrderedDict()
_lock = threading.Lock()
_built = 0

_ICC = "icc-profile-data"
#: Fields every image has, set above from the photo; and the profile, the conversion's.
_HEADER = frozenset(
    (
        "width",
        "height",
        "bands",
        "format",
        "coding",
        "interpretation",
        "xoffset",
        "yoffset",
        "xres",
        "yres",
        "filename",
        _ICC,
    )
)


def built() -> int:
    """How many transforms this process has set up (each a fresh lcms build)."""
    return _built


def clear() -> None:
    """Forget every kept transform."""
    with _lock:
        _kept.clear()


def convert(
    image: pyvips.Image, profile: bytes | None, build: Callable[[pyvips.Image], pyvips.Image]
) -> pyvips.Image:
    """``build(image)`` in memory, through the transform kept for ``profile`` (the
    embedded one, or None for the default of ``image``'s colour space) when one is."""
    rerunnable = _rerunnable(image, profile, build)
    pixels, out = rerunnable.run(memoryview(image.write_to_memory()))
    result = pyvips.Image.new_from_memory(
        pixels, image.width, image.height, out.bands, out.format
    ).copy(
        interpretation=out.interpretation,
        xres=image.xres,
        yres=image.yres,
        xoffset=image.xoffset,
        yoffset=image.yoffset,
    )
    # The rest of the photo's metadata as the conversion would have passed it on.
    for name in image.get_fields():
        if name not in _HEADER:
            result.set_type(image.get_typeof(name), name, image.get(name))
    if out.get_typeof(_ICC):
        result.set_type(out.get_typeof(_ICC), _ICC, out.get(_ICC))
    return result


def _rerunnable(
    image: pyvips.Image, profile: bytes | None, build: Callable[[pyvips.Image], pyvips.Image]
) -> Rerunnable:
    global _built
    digest = hashlib.sha256(profile).digest() if profile is not None else None
    key = (digest, str(image.interpretation), image.bands, str(image.format))
    with _lock:
        kept = _kept.get(key)
        if kept is not None:
            _kept.move_to_end(key)
            return kept

        def with_profile(template: pyvips.Image) -> pyvips.Image:
            if profile is None:
                return build(template)
            template = template.copy()
            template.set_type(pyvips.GValue.blob_type, "icc-profile-data", profile)
            return build(template)

        kept = Rerunnable(image.bands, str(image.format), str(image.interpretation), with_profile)
        _kept[key] = kept
        _built += 1
        while len(_kept) > KEPT:
            _kept.popitem(last=False)
        return kept
