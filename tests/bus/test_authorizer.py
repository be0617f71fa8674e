"""The bus's authorizer on a real catalog that goes away: an outage is "try again", never
"not yours" (which would drop a client's own photos from its socket without a word)."""

from __future__ import annotations

import asyncio

from filmstrip.catalog.postgres import PostgresCatalog
from filmstrip.protocols import ws
from filmstrip.services.bus.authorizer import Authorizer, Refused
from tests.catalog.conftest import make_photo
from tests.support import postgres


async def test_a_catalog_outage_is_unavailable_not_a_photo_of_someone_else(
    private_postgres: postgres.PrivatePostgres,
) -> None:
    catalog = PostgresCatalog(postgres.create_database(private_postgres.url), pool_size=2)
    await catalog.connect()
    auth = Authorizer(catalog)
    try:
        photo = make_photo("alice")
        await catalog.insert_photo(photo, None)
        assert await auth.owns_photo("alice", photo.id)
        assert not await auth.owns_photo("bob", photo.id)
        private_postgres.stop()
        # Side by side: each waits out the pool's connection timeout.
        owns, check, identify, token = await asyncio.wait_for(
            asyncio.gather(
                auth.owns_photo("alice", photo.id),
                auth.check_photo("alice", photo.id),
                auth.identify("fst_any-token", None),
                auth.token_valid("f" * 64, "alice"),
                return_exceptions=True,
            ),
            15,
        )
        for refused in (owns, check, identify):
            assert isinstance(refused, Refused)
            assert refused.error.code == ws.UNAVAILABLE
            assert "unavailable" in refused.error.message
        # A socket already identified keeps its token through the outage.
        assert token is True
        private_postgres.start()
        assert await asyncio.wait_for(auth.owns_photo("alice", photo.id), 15)
    finally:
        private_postgres.start()  # for the next test, if this one failed with it down
        await catalog.close()
