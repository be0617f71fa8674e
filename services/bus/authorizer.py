"""Who may join which room, decided from the catalog (never by asking the api)."""

from __future__ import annotations

import logging

from filmstrip.auth import hash_token
from filmstrip.catalog import Catalog
from filmstrip.errors import FilmstripError, TemporaryError
from filmstrip.protocols import ws


class Refused(Exception):
    """The request is refused; ``error`` is what the socket is told."""

    def __init__(self, error: ws.Error) -> None:
        super().__init__(error.message)
        self.error = error


log = logging.getLogger("filmstrip.bus.authorizer")


def _unavailable(exc: Exception) -> Refused:
    # The cause (addresses, the driver's own words) is for the log, not for any client.
    log.warning("catalog unavailable: %s", exc)
    return Refused(
        ws.Error(code=ws.UNAVAILABLE, message="the catalog is unavailable; try again shortly")
    )


class Authorizer:
    """A token maps to one client; a client may join its own room, its sessions and its
    photos, and nothing else."""

    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog

    async def identify(self, token: str, session_id: str | None) -> str:
        """The client id of ``token``; raise :class:`Refused` if the token is unknown or
        revoked, or the session is not the client's."""
        try:
            client = await self._catalog.client_for_token(hash_token(token))
            if client is None:
                raise Refused(ws.Error(code=ws.UNAUTHORIZED, message="unknown or revoked token"))
            if session_id is not None:
                session = await self._catalog.get_session(session_id, client.id)
                if session is None:
                    raise Refused(
                        ws.Error(code=ws.FORBIDDEN, message=f"session {session_id} is not yours")
                    )
        except (FilmstripError, OSError) as exc:
            if isinstance(exc, FilmstripError) and not isinstance(exc, TemporaryError):
                raise
            raise _unavailable(exc) from exc
        return client.id

    async def check_photo(self, client_id: str, photo_id: str) -> None:
        """Raise :class:`Refused` unless ``client_id`` owns ``photo_id``.

        An unknown photo is refused the same way, so sockets cannot probe for ids."""
        try:
            photo = await self._catalog.get_photo(photo_id, client_id)
        except (TemporaryError, OSError) as exc:
            raise _unavailable(exc) from exc
        if photo is None:
            raise Refused(ws.Error(code=ws.FORBIDDEN, message=f"photo {photo_id} is not yours"))

    async def owns_photo(self, client_id: str, photo_id: str) -> bool:
        """Whether ``client_id`` owns ``photo_id`` (an unknown photo is not owned)."""
        try:
            await self.check_photo(client_id, photo_id)
        except Refused as exc:
            if exc.error.code == ws.FORBIDDEN:
                return False
            raise
        return True

    async def token_valid(self, token_hash: str, client_id: str) -> bool:
        """Whether the token is still live and still the client's. A catalog that does
        not answer counts as valid: an outage must not disconnect everyone."""
        try:
            client = await self._catalog.client_for_token(token_hash)
        except (TemporaryError, OSError):
            return True
        return client is not None and client.id == client_id
