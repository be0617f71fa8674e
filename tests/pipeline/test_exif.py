"""The camera facts read from an EXIF block: where a location, a time or a setting is
written, the value a client is shown, with its sign, unit and bounds."""

from __future__ import annotations

from typing import Any

from PIL import Image
from PIL.TiffImagePlugin import IFDRational

from filmstrip.pipeline.exif import exif_from_blob, orientation_from_blob

_EXIF_IFD, _GPS_IFD = 0x8769, 0x8825


def _blob(ifd0: dict[int, Any], sub: dict[int, Any], gps: dict[int, Any]) -> bytes:
    exif = Image.Exif()
    exif.update(ifd0)
    exif.get_ifd(_EXIF_IFD).update(sub)
    exif.get_ifd(_GPS_IFD).update(gps)
    return exif.tobytes()


def _dms(degrees: int, minutes: int, seconds: int) -> tuple[IFDRational, ...]:
    return IFDRational(degrees, 1), IFDRational(minutes, 1), IFDRational(seconds, 1)


def test_gps_south_and_west_are_negative_and_seconds_are_sixtieths_of_a_minute() -> None:
    # Sydney Opera House, 12.3 m below the reference (altitude ref 1: below sea level).
    gps = {1: "S", 2: _dms(33, 51, 36), 3: "W", 4: _dms(151, 12, 36), 5: 1, 6: IFDRational(123, 10)}
    below = {"lat": -33.86, "lon": -151.21, "alt": -12.3}
    blob = _blob({}, {}, gps)
    assert exif_from_blob(blob)["gps"] == below
    # Some writers give the altitude reference as a SHORT (read as 1) instead of a BYTE.
    as_byte = b"\x00\x05\x00\x01\x00\x00\x00\x01\x01\x00\x00\x00"
    as_short = b"\x00\x05\x00\x03\x00\x00\x00\x01\x00\x01\x00\x00"
    assert blob.count(as_byte) == 1
    assert exif_from_blob(blob.replace(as_byte, as_short))["gps"] == below
    gps |= {1: "N", 3: "E", 5: 0}
    assert exif_from_blob(_blob({}, {}, gps))["gps"] == {"lat": 33.86, "lon": 151.21, "alt": 12.3}


def test_gps_off_the_globe_or_not_in_three_parts_is_left_out() -> None:
    for gps in (
        {1: "N", 2: _dms(91, 0, 0), 3: "E", 4: _dms(10, 0, 0)},
        {1: "N", 2: _dms(10, 0, 0), 3: "E", 4: _dms(181, 0, 0)},
        {1: "N", 2: _dms(10, 0, 0)[:2], 3: "E", 4: _dms(10, 0, 0)},
    ):
        assert "gps" not in exif_from_blob(_blob({}, {}, gps)), gps


def test_taken_at_is_the_original_time_with_its_fraction_and_offset() -> None:
    sub = {0x9003: "2020:02:03 04:05:06", 0x9291: "1234567", 0x9011: "+02:00"}
    fields = exif_from_blob(_blob({0x0132: "2001:01:01 00:00:00"}, sub, {}))
    assert fields["taken_at"] == "2020-02-03T04:05:06.123456+02:00"
    # A malformed offset is dropped rather than appended to the time.
    sub[0x9011] = "02:00"
    assert exif_from_blob(_blob({}, sub, {}))["taken_at"] == "2020-02-03T04:05:06.123456"
    # Without an original time, the file's modification time stands in.
    assert exif_from_blob(_blob({0x0132: "2001:01:01 00:00:00"}, {}, {}))["taken_at"] == (
        "2001-01-01T00:00:00"
    )


def test_settings_unknown_or_unreadable_are_left_out() -> None:
    # ISO 0 is "unknown" to the cameras that write it; an infinite exposure is no value.
    sub = {0x8827: 0, 0x829A: IFDRational(1, 0), 0x829D: IFDRational(28, 10)}
    fields = exif_from_blob(_blob({}, sub, {}))
    assert "iso" not in fields and "exposure_time" not in fields
    assert fields["f_number"] == 2.8


def test_texts_are_cleaned_bounded_and_the_lens_model_wins() -> None:
    ifd0 = {0x010F: "Make\x00Co ", 0x0110: "M" * 300}
    sub = {0xA433: "LensMaker", 0xA434: "LensModel"}
    fields = exif_from_blob(_blob(ifd0, sub, {}))
    assert fields["make"] == "MakeCo"
    assert fields["model"] == "M" * 256
    assert fields["lens"] == "LensModel"


def test_an_orientation_out_of_range_reads_as_upright() -> None:
    for value, read in ((9, 1), (0, 1), (8, 8)):
        assert orientation_from_blob(_blob({0x0112: value}, {}, {})) == read
