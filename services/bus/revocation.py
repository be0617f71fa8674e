"""Sockets outlive the check at identify; this closes those whose token was revoked since."""

from __future__ import annotations

import asyncio
import logging

from filmstrip.protocols import ws
from filmstrip.services.bus.authorizer import Authorizer
from filmstrip.services.bus.hub import Hub

log = logging.getLogger("filmstrip.bus.revocation")


class TokenRechecker:
    """Every ``interval_s``, checks each identified socket's token once (per distinct
    token) and closes the sockets of revoked ones with 1008."""

    def __init__(self, hub: Hub, authorizer: Authorizer, *, interval_s: float) -> None:
        self._hub = hub
        self._auth = authorizer
        self._interval = interval_s

    async def sweep(self) -> int:
        """Check once; return how many sockets were closed."""
        verdicts: dict[tuple[str, str], bool] = {}
        closing = []
        for conn in list(self._hub.connections):
            if conn.token_hash is None or conn.client_id is None or not conn.lifecycle.open:
                continue
            key = (conn.token_hash, conn.client_id)
            if key not in verdicts:
                verdicts[key] = await self._auth.token_valid(*key)
            if not verdicts[key] and conn.lifecycle.open:
                conn.reply(ws.Error(code=ws.UNAUTHORIZED, message="token revoked"))
                closing.append(conn.close(ws.CLOSE_POLICY, "token revoked", flush=True))
        if closing:
            log.info("closing sockets of revoked tokens", extra={"sockets": len(closing)})
            await asyncio.gather(*closing, return_exceptions=True)
        return len(closing)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.sweep()
            except Exception:
                log.exception("token recheck failed")
