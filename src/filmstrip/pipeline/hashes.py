"""Perceptual fingerprints: a ThumbHash placeholder and a 64-bit difference hash."""

from __future__ import annotations

import base64
import functools
import math
import operator

import pyvips


def thumbhash(image: pyvips.Image, size: int) -> str:
    """The base64 ThumbHash (https://evanw.github.io/thumbhash/) of an 8-bit sRGB image,
    computed from a downscale whose longest edge is ``size`` (at most 100)."""
    scale = min(1.0, size / max(image.width, image.height))
    small = image.resize(scale) if scale < 1.0 else image
    if small.bands in (1, 2):
        small = small.colourspace("srgb")
    if small.format != "uchar":
        small = small.cast("uchar")
    pixels = bytes(small.write_to_memory())
    if not small.hasalpha():
        # Opaque alpha added here, not by a libvips bandjoin: on a 32 px image the
        # operation's setup cost a third of the hash.
        pixels = _opaque_rgba(pixels)
    return base64.b64encode(rgba_to_thumbhash(small.width, small.height, pixels)).decode("ascii")


def _opaque_rgba(rgb: bytes) -> bytes:
    n = len(rgb) // 3
    rgba = bytearray(4 * n)
    rgba[0::4], rgba[1::4], rgba[2::4] = rgb[0::3], rgb[1::3], rgb[2::3]
    rgba[3::4] = b"\xff" * n
    return bytes(rgba)


def dhash(image: pyvips.Image) -> str:
    """64-bit difference hash (16 hex digits): each bit says whether a pixel of a 9x8 grey
    downscale is brighter than its right-hand neighbour. Near-duplicates differ in few bits."""
    grey = image.flatten(background=[255] * (image.bands - 1)) if image.hasalpha() else image
    grey = grey.colourspace("b-w")
    # Each libvips operation costs ~0.1 ms to set up on this 32 px image: skip the no-ops.
    if grey.bands != 1:
        grey = grey[0]
    small = grey.resize(9 / grey.width, vscale=8 / grey.height, kernel="linear")
    if small.format != "uchar":
        small = small.cast("uchar")
    pixels = bytes(small.write_to_memory())
    width = small.width
    bits = 0
    for y in range(8):
        for x in range(8):
            bits = (bits << 1) | (pixels[y * width + x] > pixels[y * width + x + 1])
    return f"{bits:016x}"


def _round(value: float) -> int:
    # JavaScript's Math.round, which the reference implementation uses.
    return math.floor(value + 0.5)


def rgba_to_thumbhash(w: int, h: int, rgba: bytes) -> bytes:
    """The ThumbHash of ``w`` x ``h`` RGBA pixels (a port of the reference encoder)."""
    if w > 100 or h > 100:
        raise ValueError(f"{w}x{h} does not fit in 100x100")
    n = w * h
    # Whole-channel slices and comprehensions: per-pixel index arithmetic in Python
    # costs twice as much, and this runs for every photo.
    reds, greens, blues, alphas = rgba[0::4], rgba[1::4], rgba[2::4], rgba[3::4]
    if alphas.count(255) == n:
        # Opaque (most photos): the general formulas below with every alpha 1.0, which
        # give these very floats (sums of whole numbers are exact; x * 0.0 + y == y).
        a = [1.0] * n
        avg_a = float(n)
        avg_r, avg_g, avg_b = (
            sum(reds) / 255 / avg_a,
            sum(greens) / 255 / avg_a,
            sum(blues) / 255 / avg_a,
        )
        k = 1 / 255
        r_ = [k * v for v in reds]
        g_ = [k * v for v in greens]
        b_ = [k * v for v in blues]
    else:
        a = [v / 255 for v in alphas]
        avg_a = sum(a)
        avg_r = sum(al * v for al, v in zip(a, reds, strict=True)) / 255
        avg_g = sum(al * v for al, v in zip(a, greens, strict=True)) / 255
        avg_b = sum(al * v for al, v in zip(a, blues, strict=True)) / 255
        if avg_a:
            avg_r, avg_g, avg_b = avg_r / avg_a, avg_g / avg_a, avg_b / avg_a
        # Composite atop the average colour.
        r_ = [avg_r * (1 - al) + al / 255 * v for al, v in zip(a, reds, strict=True)]
        g_ = [avg_g * (1 - al) + al / 255 * v for al, v in zip(a, greens, strict=True)]
        b_ = [avg_b * (1 - al) + al / 255 * v for al, v in zip(a, blues, strict=True)]

    has_alpha = avg_a < n
    l_limit = 5 if has_alpha else 7
    lx = max(1, _round(l_limit * w / max(w, h)))
    ly = max(1, _round(l_limit * h / max(w, h)))
    # RGB -> LPQ.
    lum = [(r + g + b) / 3 for r, g, b in zip(r_, g_, b_, strict=True)]
    p = [(r + g) / 2 - b for r, g, b in zip(r_, g_, b_, strict=True)]
    q = [r - g for r, g in zip(r_, g_, strict=True)]

    def encode_channel(channel: list[float], nx: int, ny: int) -> tuple[float, list[float], float]:
        # Separable DCT: project rows on the x cosines once, then columns on the y cosines.
        fxs = _cosines(w, nx)
        fys = _cosines(h, ny)
        rows = []
        for y in range(h):
            line = channel[y * w : (y + 1) * w]
            rows.append([sum(map(operator.mul, line, fx)) for fx in fxs])
        columns = list(zip(*rows, strict=True))
        dc = 0.0
        ac: list[float] = []
        scale = 0.0
        for cy in range(ny):
            fy = fys[cy]
            cx = 0
            while cx * ny < nx * (ny - cy):
                f = sum(map(operator.mul, columns[cx], fy)) / n
                if cx or cy:
                    ac.append(f)
                    scale = max(scale, abs(f))
                else:
                    dc = f
                cx += 1
        if scale:
            ac = [0.5 + 0.5 / scale * f for f in ac]
        return dc, ac, scale

    l_dc, l_ac, l_scale = encode_channel(lum, max(3, lx), max(3, ly))
    p_dc, p_ac, p_scale = encode_channel(p, 3, 3)
    q_dc, q_ac, q_scale = encode_channel(q, 3, 3)
    a_dc, a_ac, a_scale = encode_channel(a, 5, 5) if has_alpha else (0.0, [], 0.0)

    is_landscape = w > h
    header24 = (
        _round(63 * l_dc)
        | (_round(31.5 + 31.5 * p_dc) << 6)
        | (_round(31.5 + 31.5 * q_dc) << 12)
        | (_round(31 * l_scale) << 18)
        | (int(has_alpha) << 23)
    )
    header16 = (
        (ly if is_landscape else lx)
        | (_round(63 * p_scale) << 3)
        | (_round(63 * q_scale) << 9)
        | (int(is_landscape) << 15)
    )
    out = [header24 & 255, (header24 >> 8) & 255, header24 >> 16, header16 & 255, header16 >> 8]
    if has_alpha:
        out.append(_round(15 * a_dc) | (_round(15 * a_scale) << 4))
    ac_start = len(out)
    index = 0
    for ac in [l_ac, p_ac, q_ac, a_ac] if has_alpha else [l_ac, p_ac, q_ac]:
        for f in ac:
            pos = ac_start + (index >> 1)
            if pos == len(out):
                out.append(0)
            out[pos] |= _round(15 * f) << ((index & 1) << 2)
            index += 1
    return bytes(out)


@functools.lru_cache(maxsize=256)
def _cosines(points: int, terms: int) -> tuple[tuple[float, ...], ...]:
    """The DCT's cosines for ``terms`` frequencies over ``points`` samples (the same
    floats each call: the sizes repeat from photo to photo, so they are worked out once)."""
    return tuple(
        tuple(math.cos(math.pi / points * k * (i + 0.5)) for i in range(points))
        for k in range(terms)
    )


def thumbhash_average_rgba(hash_: bytes) -> tuple[float, float, float, float]:
    """The average colour a ThumbHash encodes (the reference decoder's first step)."""
    header24 = hash_[0] | (hash_[1] << 8) | (hash_[2] << 16)
    l_dc = (header24 & 63) / 63
    p_dc = ((header24 >> 6) & 63) / 31.5 - 1
    q_dc = ((header24 >> 12) & 63) / 31.5 - 1
    has_alpha = bool(header24 >> 23)
    a = (hash_[5] & 15) / 15 if has_alpha else 1.0
    b = l_dc - 2 / 3 * p_dc
    r = (3 * l_dc - b + q_dc) / 2
    g = r - q_dc
    return (
        max(0.0, min(1.0, r)),
        max(0.0, min(1.0, g)),
        max(0.0, min(1.0, b)),
        a,
    )
