"""libvips as the worker sets it up (only the loaders of the formats we accept run), and
its failures as categorised errors with a short reason."""

from __future__ import annotations

import string

import pytest
import pyvips

from filmstrip.errors import Category
from filmstrip.pipeline import PipelineOptions
from filmstrip.pipeline.vips import decode_error, describe


def test_a_trusted_loader_we_do_not_list_is_blocked(options: PipelineOptions) -> None:
    # libvips' matrix text format: a loader libvips trusts, for a format we do not accept.
    matrix = pyvips.Image.black(2, 2).write_to_buffer(".mat")
    with pytest.raises(pyvips.Error):
        pyvips.Image.new_from_source(pyvips.Source.new_from_memory(matrix), "").avg()
    # while a loader that is listed still runs
    png = pyvips.Image.black(2, 2).write_to_buffer(".png")
    source = pyvips.Source.new_from_memory(png)
    assert pyvips.Image.new_from_source(source, "").avg() == 0


def test_an_allocation_failure_is_this_worker_s_state_not_the_file_s() -> None:
    # Retried later (RESOURCE), not failed for good (DATA), whichever words the codec uses.
    for message in ("tiff2vips: failed to allocate 960000 bytes", "VipsJpeg: Out of memory"):
        error = decode_error(pyvips.Error(message), "the photo")
        assert (error.code, error.category) == ("out_of_memory", Category.RESOURCE), message


def test_a_decoder_s_reason_is_kept_short_and_free_of_call_site_noise() -> None:
    noisy = "unable to call jpegload_buffer\n" + "VipsJpeg: Corrupt JPEG data: bad marker\n" * 2
    assert describe(pyvips.Error(noisy)) == "VipsJpeg: Corrupt JPEG data: bad marker"
    # Lines that differ in words (a line differing only in its numbers is said once).
    long = "\n".join(f"VipsJpeg: warning {c}: " + "x" * 40 for c in string.ascii_letters[:30])
    assert len(describe(pyvips.Error(long))) == 300
    assert describe(pyvips.Error("unable to call thumbnail_buffer")) == (
        "the decoder gave no reason"
    )


def test_a_line_repeated_with_other_numbers_is_said_once() -> None:
    # BlueSquare_truncated.jpg in the worker (usertrial.md #15): one seek error per retried
    # read, each at another offset, then the reason that matters.
    seeks = "".join(f"source: bad seek to {n}\n" for n in (1372, 1354, 1345, 1341))
    said = describe(pyvips.Error(seeks + "VipsJpeg: premature end of JPEG image\n"))
    assert said == "source: bad seek to 1372; VipsJpeg: premature end of JPEG image"
    # Lines that differ in words are all kept.
    tiff = "source: bad seek to 3309\ntiff2vips: Seek error at scanline 1, strip 0\n"
    assert describe(pyvips.Error(tiff)).count(";") == 1
