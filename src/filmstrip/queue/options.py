"""Queue-wide options and the retention rules for finished jobs."""

from __future__ import annotations

import msgspec

from filmstrip.settings import QueueSettings, Settings


class Retention(msgspec.Struct, frozen=True, kw_only=True):
    """Keep finished jobs for at most ``age_s`` seconds and ``count`` jobs (0 = no bound)."""

    age_s: int = 0
    count: int = 0


#: What ``remove_on_complete`` / ``remove_on_fail`` accept, as in BullMQ: ``True`` removes at
#: once, ``False`` keeps forever, an int keeps that many, a ``Retention`` bounds age and count.
RetentionSpec = bool | int | Retention

DEFAULT_KEEP_COMPLETED = Retention(age_s=24 * 3600, count=1000)
DEFAULT_KEEP_FAILED = Retention(age_s=7 * 24 * 3600, count=5000)


def retention_args(spec: RetentionSpec) -> tuple[int, int]:
    """``(age_s, count)`` as the Lua scripts read them: age 0 = no age bound, count -1 = none."""
    if spec is True:
        return 0, 0
    if spec is False:
        return 0, -1
    if isinstance(spec, int):
        if spec < 0:
            raise ValueError("a retention count must be >= 0")
        return 0, spec
    # Retention's count 0 means "no bound".
    return max(spec.age_s, 0), spec.count if spec.count > 0 else -1


class QueueOptions(QueueSettings, frozen=True, kw_only=True):
    """The queue's settings group and what only code sets: how long finished jobs stay."""

    remove_on_complete: RetentionSpec = DEFAULT_KEEP_COMPLETED
    remove_on_fail: RetentionSpec = DEFAULT_KEEP_FAILED
    # Longest a consumer blocks on an empty queue before it looks at delayed jobs again.
    block_ms: int = 1000

    @classmethod
    def from_settings(cls, settings: Settings) -> QueueOptions:
        """The queue options the ``FILMSTRIP_*`` settings describe."""
        return cls(**msgspec.structs.asdict(settings.queue))

    @property
    def heartbeat_s(self) -> float:
        """How often a consumer refreshes the claim on the jobs it holds."""
        return self.visibility_timeout_ms / 3000

    @property
    def reclaim_s(self) -> float:
        """How often a consumer looks for jobs whose holder went silent."""
        return self.visibility_timeout_ms / 2000
