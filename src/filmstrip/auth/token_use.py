"""When a token's last use is worth writing down: at most once a minute per token per
process, so ``filmstrip token list`` can say when each was last used without a catalog
write on every request."""

from __future__ import annotations

import time

#: How stale a token's recorded last use may get.
RECORD_EVERY_S = 60.0


class TokenUse:
    """Remembers when this process last recorded each token's use."""

    def __init__(self, every_s: float = RECORD_EVERY_S, *, max_tokens: int = 10_000) -> None:
        self.every_s = every_s
        self._max_tokens = max_tokens
        self._recorded: dict[str, float] = {}

    def due(self, token_hash: str) -> bool:
        """Whether to record this use now (then it is taken as recorded)."""
        now = time.monotonic()
        last = self._recorded.get(token_hash)
        if last is not None and now - last < self.every_s:
            return False
        if len(self._recorded) >= self._max_tokens:
            # Entries past the interval are due anyway; dropping them loses nothing.
            self._recorded = {h: t for h, t in self._recorded.items() if now - t < self.every_s}
            if len(self._recorded) >= self._max_tokens:
                self._recorded.clear()
        self._recorded[token_hash] = now
        return True
