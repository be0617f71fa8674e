"""Reference renderings made with Pillow, to check our pixels against an independent decoder."""

from __future__ import annotations

import io

import pillow_heif
from PIL import Image, ImageOps

pillow_heif.register_heif_opener()


def open_rgb(data: bytes, *, transpose: bool = True) -> Image.Image:
    """First frame of ``data`` as RGB (over white when it has alpha), EXIF-upright."""
    with Image.open(io.BytesIO(data)) as image:
        image.seek(0)
        frame = ImageOps.exif_transpose(image) if transpose else image.copy()
        frame.load()
    if frame.mode in ("RGBA", "LA", "PA", "P"):
        frame = frame.convert("RGBA")
        white = Image.new("RGBA", frame.size, (255, 255, 255, 255))
        frame = Image.alpha_composite(white, frame)
    return frame.convert("RGB")


def difference(a: Image.Image, b: Image.Image, size: int = 24) -> float:
    """Mean absolute grey difference (0-255) of the two images squashed to ``size``^2."""
    small_a = a.convert("L").resize((size, size), Image.Resampling.BOX)
    small_b = b.convert("L").resize((size, size), Image.Resampling.BOX)
    pa, pb = small_a.tobytes(), small_b.tobytes()
    return sum(abs(x - y) for x, y in zip(pa, pb, strict=True)) / len(pa)
