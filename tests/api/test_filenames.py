"""A photo keeps the name its file was sent with (cleaned), shows it, finds it by ``q`` and
names its original's download with it (RFC 6266)."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from aiohttp.multipart import content_disposition_filename, parse_content_disposition

from filmstrip.services.api.filenames import MAX_BYTES, clean_filename, content_disposition
from tests.api.conftest import Api
from tests.api.factories import fake_jpeg

TUS = {"Tus-Resumable": "1.0.0"}


@pytest.mark.parametrize(
    ("raw", "kept"),
    [
        ("IMG_0001.JPG", "IMG_0001.JPG"),
        ("C:\\Users\\ana\\Pictures\\beach.jpg", "beach.jpg"),
        ("../../etc/passwd", "passwd"),
        ("a\x00b\x1fc\x7fd\x85e.jpg", "abcde.jpg"),
        ("  two   spaces\tand\ttabs .png ", "two spaces and tabs .png"),
        ("photo\u202egpj.exe", "photogpj.exe"),  # no right-to-left override
        ("Cafe\u0301.jpg", "Café.jpg"),  # NFC
        ("..", None),
        ("dir/", None),
        ("", None),
        (None, None),
    ],
)
def test_clean_filename_rules(raw: str | None, kept: str | None) -> None:
    assert clean_filename(raw) == kept


def test_a_long_name_is_cut_on_a_character_keeping_its_extension() -> None:
    kept = clean_filename("é" * 300 + ".jpeg")
    assert kept is not None
    assert len(kept.encode()) <= MAX_BYTES
    assert kept.endswith("é.jpeg")
    # Bytes count, not characters: 204 characters of 404 bytes are cut too.
    kept = clean_filename("é" * 200 + ".jpg")
    assert kept is not None and len(kept.encode()) <= MAX_BYTES and kept.endswith("é.jpg")
    # What follows the last dot past 16 bytes is no extension: cut with the rest.
    assert clean_filename("a" * 300 + "." + "b" * 300) == "a" * MAX_BYTES


def test_content_disposition_has_an_ascii_fallback_and_utf8_name() -> None:
    assert content_disposition("beach.jpg") == 'attachment; filename="beach.jpg"'
    value = content_disposition('Été "à" Zürich 😀.jpg')
    assert value == (
        'attachment; filename="Ete _a_ Zurich _.jpg"; '
        "filename*=UTF-8''%C3%89t%C3%A9%20%22%C3%A0%22%20Z%C3%BCrich%20%F0%9F%98%80.jpg"
    )
    kind, params = parse_content_disposition(value)
    assert kind == "attachment"
    assert content_disposition_filename(params, "filename") == 'Été "à" Zürich 😀.jpg'


async def _photo(api: Api, photo_id: str) -> dict[str, Any]:
    resp = await api.http.get(f"{api.url}/v1/photos/{photo_id}", headers=api.auth)
    body: dict[str, Any] = await resp.json()
    assert resp.status == 200, body
    return body


async def _upload(api: Api, filename: str) -> str:
    resp = await api.upload(fake_jpeg(), filename=filename)
    body: dict[str, Any] = await resp.json()
    assert resp.status == 201, body
    return str(body["photo_id"])


async def _names(api: Api, **query: str) -> list[str]:
    names: list[str] = []
    cursor = None
    while True:
        params = {**query, **({"cursor": cursor} if cursor else {})}
        resp = await api.http.get(f"{api.url}/v1/photos", params=params, headers=api.auth)
        body: dict[str, Any] = await resp.json()
        assert resp.status == 200, body
        names += [item["filename"] for item in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            return names


async def test_a_multipart_filename_is_kept_shown_and_names_the_download(api: Api) -> None:
    photo_id = await _upload(api, "C:\\fotos\\Été à  Zürich.jpg")
    body = await _photo(api, photo_id)
    assert body["filename"] == "Été à Zürich.jpg"
    resp = await api.http.get(f"{api.url}{body['original_url']}")
    assert resp.status == 200
    assert resp.headers["Content-Disposition"] == (
        "attachment; filename=\"Ete a Zurich.jpg\"; filename*=UTF-8''"
        "%C3%89t%C3%A9%20%C3%A0%20Z%C3%BCrich.jpg"
    )
    assert resp.content_disposition is not None
    assert resp.content_disposition.filename == "Été à Zürich.jpg"


async def _raw_upload(api: Api, disposition: bytes) -> str:
    """An upload whose file part's Content-Disposition is ``disposition``, byte for byte."""
    body = (
        b"--b\r\nContent-Disposition: " + disposition + b"\r\n"
        b"Content-Type: image/jpeg\r\n\r\n" + fake_jpeg() + b"\r\n--b--\r\n"
    )
    headers = {**api.auth, "Content-Type": "multipart/form-data; boundary=b"}
    resp = await api.http.post(f"{api.url}/v1/photos", data=body, headers=headers)
    answer: dict[str, Any] = await resp.json()
    assert resp.status == 201, answer
    return str(answer["photo_id"])


async def test_a_browser_sent_name_arrives_as_sent(api: Api) -> None:
    # As browsers send it: UTF-8 as it is, only '"' (and CR, LF) percent-encoded.
    disposition = 'form-data; name="file"; filename="Café %22x%22.jpg"'.encode()
    photo_id = await _raw_upload(api, disposition)
    assert (await _photo(api, photo_id))["filename"] == 'Café "x".jpg'


async def test_a_photo_sent_without_a_name_downloads_under_its_id(api: Api) -> None:
    photo_id = await _raw_upload(api, b'form-data; name="file"')
    body = await _photo(api, photo_id)
    assert body["filename"] is None
    resp = await api.http.get(f"{api.url}{body['original_url']}")
    assert resp.headers["Content-Disposition"] == f'attachment; filename="{photo_id}.jpg"'


async def test_a_tus_filename_is_kept(api: Api) -> None:
    data = fake_jpeg()
    name = base64.b64encode("ünïcode/../trip\x07 01.jpg".encode()).decode()
    headers = {
        **api.auth,
        **TUS,
        "Upload-Length": str(len(data)),
        "Upload-Metadata": f"filename {name}",
        "Content-Type": "application/offset+octet-stream",
    }
    resp = await api.http.post(f"{api.url}/v1/uploads", headers=headers, data=data)
    assert resp.status == 201, await resp.text()
    photo_id = resp.headers["Filmstrip-Photo-Id"]
    assert (await _photo(api, photo_id))["filename"] == "trip 01.jpg"


async def test_the_listing_finds_photos_by_name_in_any_case_page_by_page(api: Api) -> None:
    names = ["ÉTÉ-1.jpg", "été-2.jpg", "Winter.jpg", "summer_été-3.jpg", "100%.jpg", "a_b.jpg"]
    for name in names:
        await _upload(api, name)
    await api.upload(fake_jpeg(), filename="")  # no name: never matches
    assert await _names(api, q="été", limit="1") == ["summer_été-3.jpg", "été-2.jpg", "ÉTÉ-1.jpg"]
    assert await _names(api, q="WINTER") == ["Winter.jpg"]
    # LIKE's wildcards in q are plain characters.
    assert await _names(api, q="%") == ["100%.jpg"]
    assert await _names(api, q="_") == ["a_b.jpg", "summer_été-3.jpg"]
    assert await _names(api, q="nothing") == []
    resp = await api.http.get(f"{api.url}/v1/photos", params={"q": "x" * 256}, headers=api.auth)
    assert resp.status == 400
    assert (await resp.json())["error"]["code"] == "bad_query"


async def test_the_longest_name_kept_is_found_by_all_of_it(api: Api) -> None:
    """A name may be ``MAX_BYTES`` long, so a ``q`` of that length is a search, not a 400."""
    longest = "a" * (MAX_BYTES - 4) + ".jpg"
    await _upload(api, longest)
    assert await _names(api, q=longest) == [longest]
