"""Tenant isolation beyond tests/api and tests/bus: rooms and replay across two clients,
revoked tokens on both the api and the bus, and signed URLs that expired or were
re-pointed. (Another client's photo being 404 on every photo route is in tests/api.)"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from filmstrip.auth import hash_token
from filmstrip.auth.signing import signed_query
from filmstrip.catalog import Catalog
from filmstrip.events import EventPublisher
from filmstrip.protocols import events as ev
from filmstrip.protocols import ws
from tests.bus.support import Account, BusClient
from tests.security.conftest import MakeApi, error_of

Connect = Callable[..., Awaitable[BusClient]]
MakeAccount = Callable[..., Awaitable[Account]]


async def _publish_all(pub: EventPublisher, acc: Account) -> None:
    for type_ in (ev.PHOTO_UPLOADED, ev.STAGE_COMPLETED, ev.PHOTO_COMPLETED):
        await pub.publish(
            type_, photo_id=acc.photos[0], client_id=acc.client_id, trace_id="t" * 32,
            session_id=acc.sessions[0],
        )  # fmt: skip


async def test_no_room_of_another_client_can_be_joined_or_heard(
    bus: str, connect: Connect, make_account: MakeAccount, publisher: EventPublisher
) -> None:
    alice, bob = await make_account(), await make_account()
    # Bob may not take Alice's session room ...
    snoop = await connect(bus)
    await snoop.send({"type": "identify", "token": bob.token, "session_id": alice.sessions[0]})
    assert (await snoop.expect("error"))["code"] == ws.FORBIDDEN
    # ... nor her photo's room; an unknown photo is refused alike (ids cannot be probed).
    mallory = await connect(bus)
    await mallory.identify(bob.token)
    for photo_id in (alice.photos[0], "p_does_not_exist"):
        await mallory.send({"type": "subscribe", "photo_id": photo_id})
        error = await mallory.expect("error")
        assert error["code"] == ws.FORBIDDEN
        assert error["message"] == f"photo {photo_id} is not yours"
    # Alice's events reach her socket and none of Bob's, live or replayed.
    watcher = await connect(bus)
    await watcher.identify(alice.token)
    await watcher.subscribe(alice.photos[0])
    await _publish_all(publisher, alice)
    assert len(await watcher.events(3)) == 3
    await mallory.barrier()  # the pong is the first frame: no event came before it
    await mallory.send({"type": "resume", "last_event_id": "0"})
    resumed = await mallory.expect("resumed")
    assert resumed["replayed"] == 0


async def test_revoked_token_is_refused_by_the_bus(
    bus: str, connect: Connect, make_account: MakeAccount, catalog: Catalog
) -> None:
    acc = await make_account()
    assert await catalog.revoke_token(hash_token(acc.token))
    c = await connect(bus)
    await c.send({"type": "identify", "token": acc.token})
    assert (await c.expect("error"))["code"] == ws.UNAUTHORIZED
    assert await c.closed() == ws.CLOSE_POLICY


async def test_revoked_token_is_refused_by_the_api(make_api: MakeApi) -> None:
    api = await make_api()
    resp = await api.http.get(f"{api.url}/v1/photos/{'0' * 8}-0000-0000-0000-{'0' * 12}",
                              headers=api.auth)  # fmt: skip
    await error_of(resp, 404, "photo_not_found")
    assert await api.state.catalog.revoke_token(hash_token(api.token))
    resp = await api.http.get(f"{api.url}/v1/photos/{'0' * 8}-0000-0000-0000-{'0' * 12}",
                              headers=api.auth)  # fmt: skip
    await error_of(resp, 401, "invalid_token")
    await error_of(await api.upload(b"\xff\xd8\xff\xe0"), 401, "invalid_token")
    assert api.blob_files() == []


async def test_signed_urls_expire_and_cannot_be_repointed(make_api: MakeApi, corpus: Path) -> None:
    api = await make_api()
    ids = []
    for name in ("Landscape_1.jpg", "Portrait_6.jpg"):
        resp = await api.upload((corpus / "real" / name).read_bytes())
        ids.append((await resp.json())["photo_id"])
    mine, other = ids
    secret = api.state.signing_secret
    path = f"/v1/photos/{mine}/original"

    fresh = signed_query(secret, path, api.settings.api.signed_url_ttl_s)
    assert (await api.http.get(f"{api.url}{fresh}")).status == 200
    # Properly signed, but it expired a minute ago.
    expired = signed_query(secret, path, 60, now=time.time() - 180)
    await error_of(await api.http.get(f"{api.url}{expired}"), 403, "bad_signature")
    # The same signature on another photo, on another rendition, or with a later expiry.
    query = parse_qs(urlsplit(fresh).query)
    exp, sig = query["exp"][0], query["sig"][0]
    for moved in (
        f"/v1/photos/{other}/original?exp={exp}&sig={sig}",
        f"/v1/photos/{mine}/derivatives/thumbnail?exp={exp}&sig={sig}",
        f"{path}?exp={int(exp) + 60}&sig={sig}",
    ):
        await error_of(await api.http.get(f"{api.url}{moved}"), 403, "bad_signature")
    # Signatures open blob routes only: elsewhere a signed query still needs a token.
    moved = f"/v1/photos/{mine}?exp={exp}&sig={sig}"
    await error_of(await api.http.get(f"{api.url}{moved}"), 401, "unauthorized")
    # Another client's token does not borrow a signed URL's access: tokens are scoped.
    bob = {"Authorization": f"Bearer {await api.new_token('bob')}"}
    await error_of(await api.http.get(f"{api.url}{fresh}", headers=bob), 404, "photo_not_found")
