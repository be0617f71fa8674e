"""DELETE /v1/photos/{id}: row, original, derivatives and waiting job all go."""

from __future__ import annotations

from filmstrip.blobs import open_blob_store
from filmstrip.services.api.reconciler import sweep_orphan_blobs
from tests.api.conftest import EVERY_BLOB, Api
from tests.api.factories import complete, uploaded
from tests.support.settings import unreachable_s3


async def test_delete_removes_row_blobs_and_waiting_job(api: Api) -> None:
    keep = await uploaded(api)
    gone = await uploaded(api)
    await complete(api, gone)  # a derivative blob exists now
    await complete(api, keep)  # and one the delete must leave alone
    # Both jobs are still waiting (no worker runs here): the deleted one must be cancelled.
    assert await api.waiting_jobs() == 2
    assert any(f.startswith(f"derivatives/{gone}/") for f in api.blob_files())

    resp = await api.http.delete(f"{api.url}/v1/photos/{gone}", headers=api.auth)
    assert resp.status == 204, await resp.text()

    assert await api.state.catalog.get_photo(gone) is None
    assert await api.state.queue.get_job(f"photo:{gone}") is None
    assert await api.waiting_jobs() == 1
    assert not [f for f in api.blob_files() if gone in f]
    # The other photo is untouched.
    assert await api.state.catalog.get_photo(keep) is not None
    assert sorted(f for f in api.blob_files() if keep in f and not f.startswith(".meta/")) == [
        f"derivatives/{keep}/thumbnail.webp",
        f"originals/{keep}",
    ]
    assert await api.state.queue.get_job(f"photo:{keep}") is not None


async def test_second_delete_is_404_and_get_is_404(api: Api) -> None:
    photo_id = await uploaded(api)
    first = await api.http.delete(f"{api.url}/v1/photos/{photo_id}", headers=api.auth)
    assert first.status == 204
    second = await api.http.delete(f"{api.url}/v1/photos/{photo_id}", headers=api.auth)
    body = await second.json()
    assert second.status == 404 and body["error"]["code"] == "photo_not_found"
    got = await api.http.get(f"{api.url}/v1/photos/{photo_id}", headers=api.auth)
    assert got.status == 404


async def test_deleted_bytes_can_be_uploaded_again(api: Api) -> None:
    data = b"\xff\xd8\xff\xe0same bytes"
    first = await uploaded(api, data=data)
    await api.http.delete(f"{api.url}/v1/photos/{first}", headers=api.auth)
    resp = await api.upload(data)
    body = await resp.json()
    assert resp.status == 201, body
    assert body["photo_id"] != first and body["duplicate"] is False


async def test_malformed_id_is_404(api: Api) -> None:
    resp = await api.http.delete(f"{api.url}/v1/photos/not-a-photo", headers=api.auth)
    assert resp.status == 404


async def test_a_delete_during_a_store_outage_answers_204_and_the_sweep_takes_the_files(
    api: Api,
) -> None:
    """The row goes first: the store being down when its files should go is no reason to
    answer anything but 204 (the photo is gone for the client). Its files are orphans
    then, which the reconciler's sweep removes once the store answers again."""
    photo_id = await uploaded(api)
    await complete(api, photo_id)
    store = api.state.blobs
    # An S3 store whose endpoint nobody listens on: each call fails as a real outage does.
    down = await open_blob_store(unreachable_s3(api.settings))
    api.state.blobs = down
    try:
        resp = await api.http.delete(f"{api.url}/v1/photos/{photo_id}", headers=api.auth)
    finally:
        api.state.blobs = store
        await down.close()
    assert resp.status == 204, await resp.text()
    assert await api.state.catalog.get_photo(photo_id) is None
    assert await api.state.queue.get_job(f"photo:{photo_id}") is None
    left = [f for f in api.blob_files() if photo_id in f and not f.startswith(".meta/")]
    assert left == [f"derivatives/{photo_id}/thumbnail.webp", f"originals/{photo_id}"]
    assert await sweep_orphan_blobs(api.state.catalog, store, grace_s=EVERY_BLOB) == 2
    assert [f for f in api.blob_files() if photo_id in f] == []
