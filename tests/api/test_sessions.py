"""Upload sessions: create, upload into, follow the counts."""

from __future__ import annotations

from tests.api.conftest import Api
from tests.api.factories import complete, fail, new_session, uploaded


async def test_session_counts_follow_its_photos(api: Api) -> None:
    session = await new_session(api)
    empty = await api.http.get(f"{api.url}/v1/sessions/{session}", headers=api.auth)
    body = await empty.json()
    assert empty.status == 200, body
    assert body["photo_ids"] == []
    assert body["counts"] == {"queued": 0, "processing": 0, "completed": 0, "failed": 0, "total": 0}

    failed = await uploaded(api, session_id=session)
    await fail(api, failed)
    done = await uploaded(api, session_id=session)
    await complete(api, done)
    waiting = await uploaded(api, session_id=session)
    await uploaded(api)  # not in the session

    resp = await api.http.get(f"{api.url}/v1/sessions/{session}", headers=api.auth)
    body = await resp.json()
    assert body["session_id"] == session and body["created_at"]
    assert body["photo_ids"] == [failed, done, waiting]
    assert body["counts"] == {"queued": 1, "processing": 0, "completed": 1, "failed": 1, "total": 3}
    # Counts change with every upload: no cache may answer for the server.
    assert resp.headers["Cache-Control"] == "no-store"


async def test_create_answers_location(api: Api) -> None:
    resp = await api.http.post(f"{api.url}/v1/sessions", headers=api.auth)
    body = await resp.json()
    assert resp.status == 201
    assert resp.headers["Location"] == f"/v1/sessions/{body['session_id']}"


async def test_unknown_session_is_404(api: Api) -> None:
    for session_id in ("nope", "not a valid id", "x" * 65):
        resp = await api.http.get(f"{api.url}/v1/sessions/{session_id}", headers=api.auth)
        body = await resp.json()
        assert resp.status == 404, body
        assert body["error"]["code"] == "session_not_found"
