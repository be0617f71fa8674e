"""Reading a photo's bytes: signed derivative URLs, HEAD and conditional requests."""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlsplit

import aiohttp

from filmstrip.catalog import DerivativeRecord
from filmstrip.pipeline.plan import stage_making
from filmstrip.protocols.jobs import remake_job_id_for
from tests.api.conftest import Api
from tests.api.factories import complete, fake_jpeg, uploaded


async def _view(api: Api, photo_id: str) -> dict[str, object]:
    resp = await api.http.get(f"{api.url}/v1/photos/{photo_id}", headers=api.auth)
    assert resp.status == 200
    body: dict[str, object] = await resp.json()
    return body


async def test_a_derivatives_signed_url_opens_without_a_token(api: Api) -> None:
    """What an ``<img src>`` does: the URL in the answer is all it takes."""
    photo_id = await uploaded(api)
    await complete(api, photo_id)
    derivatives = (await _view(api, photo_id))["derivatives"]
    assert isinstance(derivatives, list)
    resp = await api.http.get(f"{api.url}{derivatives[0]['url']}")
    assert resp.status == 200, await resp.text()
    assert resp.headers["Content-Type"] == "image/webp"
    assert await resp.read() == b"RIFF....WEBP"


async def test_head_answers_the_headers_and_no_body(api: Api) -> None:
    """A HEAD's answer has the GET's length and no body: bytes after it would be read as
    the next answer on the same connection."""
    data = fake_jpeg()
    photo_id = await uploaded(api, data=data)
    url = f"{api.url}{(await _view(api, photo_id))['original_url']}"
    connector = aiohttp.TCPConnector(limit=1)  # one connection: the GET follows the HEAD on it
    async with aiohttp.ClientSession(connector=connector) as http:
        async with http.head(url) as head:
            assert head.status == 200
            assert head.headers["Content-Length"] == str(len(data))
            assert head.headers["Content-Type"] == "image/jpeg"
        async with http.get(url) as got:
            assert got.status == 200
            assert await got.read() == data


async def test_any_etag_of_a_list_in_if_none_match_is_a_304(api: Api) -> None:
    """Caches send every ETag they hold, comma-separated with spaces."""
    photo_id = await uploaded(api)
    url = f"{api.url}{(await _view(api, photo_id))['original_url']}"
    etag = (await api.http.get(url)).headers["ETag"]
    for held in (f'"other", {etag}', f'{etag}, "other"', f'"a",{etag} ,"b"'):
        again = await api.http.get(url, headers={"If-None-Match": held})
        assert again.status == 304, held
        assert again.headers["ETag"] == etag
    assert (await api.http.get(url, headers={"If-None-Match": '"other"'})).status == 200


async def test_a_derivative_a_byte_short_or_gone_is_never_served(api: Api) -> None:
    """Browsers keep derivatives as immutable: one shorter than the catalog records, by
    even a byte, is a 503 to retry while it is made again, never a 200; and it is made
    again: the job that remakes it waits in the queue (without it the 503 lasts for ever)."""
    photo_id = await uploaded(api)
    await complete(api, photo_id)  # records 12 bytes
    key = f"derivatives/{photo_id}/thumbnail.webp"
    derivatives = (await _view(api, photo_id))["derivatives"]
    assert isinstance(derivatives, list)
    url = f"{api.url}{derivatives[0]['url']}"
    await api.state.blobs.put_bytes(key, b"RIFF....WEB", content_type="image/webp")
    for _damage in ("short", "gone"):
        resp = await api.http.get(url)
        body = await resp.json()
        assert resp.status == 503, body
        assert body["error"]["code"] == "derivative_remaking"
        assert int(resp.headers["Retry-After"]) > 0
        await api.state.blobs.delete(key)
    stage = stage_making("thumbnail")
    assert stage is not None
    remake = await api.state.queue.get_job(remake_job_id_for(photo_id, stage))
    assert remake is not None and remake.state.value == "waiting", remake


async def test_a_derivative_being_made_again_is_named_in_english(api: Api) -> None:
    """The 503's message names the derivative as a reader would: "the optimized copy is
    damaged or missing", not "the optimized is"."""
    photo_id = await uploaded(api)
    await complete(api, photo_id)  # the thumbnail, stored
    copy = DerivativeRecord(
        name="optimized", key=f"derivatives/{photo_id}/optimized.webp",
        content_type="image/webp", width=1, height=1, bytes=10,
    )  # fmt: skip
    merged = await api.state.catalog.add_deferred_results(
        photo_id, metadata={}, derivatives=[copy], replaces={"optimized"}
    )
    assert merged is not None  # recorded, never stored: missing
    await api.state.blobs.delete(f"derivatives/{photo_id}/thumbnail.webp")
    derivatives = (await _view(api, photo_id))["derivatives"]
    assert isinstance(derivatives, list)
    said = {}
    for derivative in derivatives:
        resp = await api.http.get(f"{api.url}{derivative['url']}")
        assert resp.status == 503
        said[derivative["name"]] = (await resp.json())["error"]["message"]
    assert said["optimized"].startswith("the optimized copy is damaged or missing"), said
    assert said["thumbnail"].startswith("the thumbnail is damaged or missing"), said


async def test_the_signed_urls_in_an_answer_live_the_configured_ttl(api: Api) -> None:
    """A page of ``<img src>`` keeps working for FILMSTRIP_SIGNED_URL_TTL_S after it was
    fetched (rounded up to the minute), not until the next minute."""
    photo_id = await uploaded(api)
    await complete(api, photo_id)
    before = time.time()
    view = await _view(api, photo_id)
    derivatives = view["derivatives"]
    assert isinstance(derivatives, list)
    ttl = api.settings.api.signed_url_ttl_s
    for url in (str(view["original_url"]), derivatives[0]["url"]):
        expires = int(parse_qs(urlsplit(url).query)["exp"][0])
        assert int(before) + ttl <= expires <= time.time() + ttl + 60, url


async def test_metadata_that_does_not_fit_its_type_is_answered_without_the_misfit(
    api: Api,
) -> None:
    """A row an older release (or a hand) wrote with a value of another type still answers,
    and so does the listing it is on: the keys that fit, not a 500."""
    photo_id = await uploaded(api)
    stored = await api.state.catalog.complete_photo(
        photo_id,
        metadata={"width": "wide", "height": 10, "format": "jpeg"},
        derivatives=[],
        taken_at=None,
    )
    assert stored
    assert (await _view(api, photo_id))["metadata"] == {"height": 10, "format": "jpeg"}
    resp = await api.http.get(f"{api.url}/v1/photos", headers=api.auth)
    assert resp.status == 200, await resp.text()
    items = (await resp.json())["items"]
    assert [item["metadata"] for item in items] == [{"height": 10, "format": "jpeg"}]
