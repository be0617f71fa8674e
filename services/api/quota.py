"""Per-client storage limits: the quota on stored originals (both upload paths) and the
budget of open tus uploads (count and declared bytes).

The quota counts the bytes of the client's originals (its photos' sizes, whatever their
status, until deleted); derivatives are the service's own and do not count. Each path
refuses as early as it can: before the body when the client is already at its quota, at
the remaining room while streaming (the blob store then keeps nothing), and finally in the
transaction that records the photo, which concurrent uploads cannot both slip past.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from filmstrip.catalog import ClientRecord
from filmstrip.services.api.errors import ApiError
from filmstrip.services.api.state import ApiState
from filmstrip.settings import Settings

if TYPE_CHECKING:  # the tus package imports this module's users
    from filmstrip.services.api.tus.store import OpenUploads

QUOTA_EXCEEDED = "quota_exceeded"
TOO_MANY_OPEN_UPLOADS = "too_many_open_uploads"
OPEN_UPLOADS_TOO_LARGE = "open_uploads_too_large"


def quota_exceeded(quota: int, stored: int, *, adding: int | None = None) -> ApiError:
    """The 413 for an upload that would take the client past its quota."""
    upload = f"this {adding}-byte upload" if adding is not None else "this upload"
    return ApiError(
        413,
        QUOTA_EXCEEDED,
        f"the client's photos take {stored} bytes of its quota of {quota}; {upload} would"
        " pass it. Delete photos to make room",
    )


async def stored(state: ApiState, client: ClientRecord) -> int:
    """The bytes of the client's photos, as the quota counts them (0 without a quota)."""
    if not state.settings.api.client_quota_bytes:
        return 0
    return await state.catalog.stored_bytes(client.id)


async def room(state: ApiState, client: ClientRecord, *, at_least: int = 1) -> int | None:
    """Bytes the client may still store (None without a quota); the 413 when under
    ``at_least``."""
    quota = state.settings.api.client_quota_bytes
    if not quota:
        return None
    used = await stored(state, client)
    if quota - used < at_least:
        raise quota_exceeded(quota, used, adding=at_least if at_least > 1 else None)
    return quota - used


def tus_admission(settings: Settings, length: int, stored: int) -> Callable[[OpenUploads], None]:
    """Whether a new tus upload of ``length`` bytes fits beside the client's open ones,
    given the ``stored`` bytes of its photos: raises the 429 or 413 if not."""

    def admit(open_: OpenUploads) -> None:
        if open_.count >= settings.tus.max_open_per_client:
            raise ApiError(
                429,
                TOO_MANY_OPEN_UPLOADS,
                f"the client has {open_.count} unfinished uploads, the most it may have open;"
                " finish or terminate (DELETE) one first, or wait for one to expire",
            )
        budget = settings.tus.max_open_bytes_per_client
        if open_.bytes + length > budget:
            raise ApiError(
                413,
                OPEN_UPLOADS_TOO_LARGE,
                f"the client's unfinished uploads declare {open_.bytes} bytes; with this one"
                f" ({length}) they would pass {budget}. Finish or terminate one first",
            )
        # Other open uploads reserve nothing: one abandoned by a crashed app would hold
        # the room until it expired. Whichever finishes first is recorded first.
        quota = settings.api.client_quota_bytes
        if quota and stored + length > quota:
            raise quota_exceeded(quota, stored, adding=length)

    return admit
