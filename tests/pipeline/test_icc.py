"""Reading ICC profile descriptions ourselves, and skipping the identity sRGB transform."""

from __future__ import annotations

import io
from pathlib import Path

import pillow_heif
import pytest
import pyvips
from PIL import ImageCms

from filmstrip.pipeline import decode, icc, transforms
from filmstrip.pipeline.decode import to_srgb8


def _profile(path: Path) -> bytes | None:
    image = pyvips.Image.new_from_file(str(path))
    if image.get_typeof("icc-profile-data") == 0:
        return None
    return bytes(image.get("icc-profile-data"))


def test_descriptions_match_littlecms_for_every_corpus_profile(corpus: Path) -> None:
    seen = 0
    for path in sorted((corpus / "real").iterdir()):
        try:
            profile = _profile(path)
        except pyvips.Error:
            continue  # formats libvips cannot open (HEIC) are read by pillow-heif
        if profile is None:
            continue
        cms = ImageCms.ImageCmsProfile(io.BytesIO(profile)).profile
        assert icc.description(profile) == cms.profile_description.strip(), path.name
        seen += 1
    assert seen >= 5


@pytest.mark.parametrize(
    "junk", [b"", b"\0" * 10, b"\0" * 128 + b"\xff\xff\xff\xff", b"x" * 200, bytes(range(256)) * 3]
)
def test_unreadable_profiles_have_no_description(junk: bytes) -> None:
    assert icc.description(junk) is None
    assert not icc.is_srgb(junk)


def test_srgb_is_told_apart_from_other_profiles(corpus: Path) -> None:
    assert icc.is_srgb(_profile(corpus / "real" / "Nikon_D5000.jpg"))
    assert not icc.is_srgb(_profile(corpus / "real" / "Canon_EOS_7D.jpg"))  # Adobe RGB
    assert not icc.is_srgb(_profile(corpus / "real" / "red-at-12-oclock-with-color-profile.jpg"))


def test_srgb_is_known_by_its_numbers_whatever_its_name(corpus: Path) -> None:
    # Android's Ultra HDR photos: sRGB's primaries and parametric curve under another
    # name. Transforming through it cost 31 ms of CPU on an 8 MP photo and changed nothing.
    ultra_hdr = _profile(corpus / "real" / "ultra-hdr.jpg")
    assert icc.description(ultra_hdr) == "sRGB Gamut with sRGB Transfer"
    assert icc.is_srgb(ultra_hdr)
    assert icc.is_srgb(bytes(pyvips.Operation.call("profile_load", "srgb")))  # libvips' own
    iphone_heic = (corpus / "real" / "exif-at-eof.heic").read_bytes()
    display_p3 = pillow_heif.open_heif(iphone_heic).info["icc_profile"]
    assert icc.description(display_p3) == "Display P3" and not icc.is_srgb(display_p3)
    assert not icc.is_srgb(bytes(pyvips.Operation.call("profile_load", "p3")))
    image = pyvips.Image.new_from_file(str(corpus / "real" / "ultra-hdr.jpg"), shrink=4)
    skipped = to_srgb8(image)
    converted = image.icc_transform("srgb", embedded=True, intent="perceptual").cast("uchar")
    assert (skipped.cast("int") - converted.cast("int")).abs().max() <= 1


def test_skipping_the_srgb_transform_changes_no_pixel_visibly(corpus: Path) -> None:
    image = pyvips.Image.new_from_file(str(corpus / "real" / "Nikon_D5000.jpg"))
    skipped = to_srgb8(image)
    converted = image.icc_transform("srgb", embedded=True, intent="perceptual").cast("uchar")
    diff = (skipped.cast("int") - converted.cast("int")).abs()
    assert diff.max() <= 3
    assert diff.avg() < 0.5


def test_other_profiles_are_still_converted(corpus: Path) -> None:
    image = pyvips.Image.new_from_file(
        str(corpus / "real" / "red-at-12-oclock-with-color-profile.jpg")
    )
    as_stored = image.cast("int")
    diff = (to_srgb8(image).cast("int") - as_stored).abs()
    assert diff.max() > 10, "ColorSpin swaps channels: its pixels must change"


def test_a_profile_already_seen_builds_no_new_transform(corpus: Path) -> None:
    # lcms builds the default CMYK transform in ~17 ms; a second CMYK photo reuses it.
    cmyk = pyvips.Image.new_from_file(str(corpus / "real" / "pil_sample_cmyk.jpg"))
    other = cmyk.invert().copy(interpretation="cmyk")
    transforms.clear()
    before = transforms.built()
    for image in (cmyk, other, cmyk):
        got = to_srgb8(image)
        assert got.write_to_memory() == decode._to_srgb8(image).write_to_memory()
    assert transforms.built() - before == 1


def test_an_srgb_profile_builds_no_transform(corpus: Path) -> None:
    # The skip is the point: building the identity transform costs as much as decoding.
    image = pyvips.Image.new_from_file(str(corpus / "real" / "Nikon_D5000.jpg"), shrink=8)
    transforms.clear()
    before = transforms.built()
    to_srgb8(image).write_to_memory()
    assert transforms.built() == before
    # while a profile that changes colours does build one
    spin = pyvips.Image.new_from_file(
        str(corpus / "real" / "red-at-12-oclock-with-color-profile.jpg")
    )
    to_srgb8(spin).write_to_memory()
    assert transforms.built() == before + 1
