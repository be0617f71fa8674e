"""The roles' settings in the soaks (besides where Redis, the store and the catalog are):
under chaos, quick retries, reclaims and repairs, so they show within a run."""

from __future__ import annotations

import os
from pathlib import Path

from filmstrip.embedded.supervisor import env_without_filmstrip

ROOT = Path(__file__).resolve().parents[1]


def worker_threads(workers: int, cores: int | None = None) -> int:
    """Pipeline threads per worker: the workers share the cores (default: the machine's)."""
    return max(1, (cores or os.cpu_count() or 1) // workers)


def role_env(*, chaos: bool, threads: int, packed: bool = False) -> dict[str, str]:
    """This process's environment without its Filmstrip settings, plus the soaks'
    (``threads``: each worker's pipeline threads; ``packed``: more workers than cores)."""
    env = env_without_filmstrip()
    env.update(
        PYTHONPATH=f"{ROOT / 'src'}{os.pathsep}{ROOT}",
        FILMSTRIP_SHUTDOWN_GRACE_S="5",
        FILMSTRIP_QUEUE_MAX_WAITING="100000",
        FILMSTRIP_SIGNING_SECRET="soak-secret",
        # The workers share the machine's cores: each gets its part, as a deployment of
        # several workers per host would set it (the default, one per CPU, suits one).
        FILMSTRIP_PIPELINE_THREADS=str(threads),
    )
    if packed:
        # As the README tells a deployment with more workers than cores.
        env.update(FILMSTRIP_WORKER_CPU_SLICE_MS="100")
    if chaos:
        # A clean run keeps the defaults: its figures are of the system as deployed, and
        # a 5 s visibility timeout alone renews every claim each 1.7 s instead of 10 s.
        env.update(
            FILMSTRIP_JOB_BACKOFF_MS="500",
            FILMSTRIP_JOB_ATTEMPTS="8",
            FILMSTRIP_VISIBILITY_TIMEOUT_MS="5000",
            FILMSTRIP_MAX_STALLED="5",
        )
        env.update(
            FILMSTRIP_RECONCILE_INTERVAL_S="5",
            FILMSTRIP_STUCK_AFTER_S="30",
            # A put that S3 stored but whose answer the outage cut leaves a blob without a
            # row; the api's reconciler removes such orphans after this grace. A clean run
            # keeps the defaults: a sweep lists the whole store, which is not free.
            FILMSTRIP_ORPHAN_GRACE_S="15",
            FILMSTRIP_ORPHAN_SWEEP_INTERVAL_S="5",
        )
    return env
