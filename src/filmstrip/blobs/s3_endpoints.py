"""One endpoint resolution per bucket, not per object: a backport of botocore's fix for
its S3 endpoint cache (boto/botocore#3528, merged upstream as #3692).

botocore resolves every request's endpoint by walking S3's endpoint rule set (~0.4 ms of
CPU) behind a cache keyed by all the rule set's parameters. ``Key``, ``Prefix`` and
``CopySource`` are among them though no rule reads them, so for a store whose every
object key is new the cache never hits. aioboto3 15.5 pins a botocore from before the
fix; this drops the three for a client the same way. tests/blobs/test_s3_endpoints.py
fails if the rule set ever starts reading them.
"""

from __future__ import annotations

from typing import Any

UNREFERENCED = frozenset({"Key", "Prefix", "CopySource"})


def share_endpoint_resolution(client: Any) -> bool:
    """Stop ``client`` passing the object-level parameters to its endpoint rules, so a
    bucket's requests share one cached resolution; True if that changed anything."""
    resolver = getattr(client, "_ruleset_resolver", None)
    params = getattr(resolver, "_param_definitions", None)
    if not isinstance(params, dict) or not UNREFERENCED & params.keys():
        return False  # a botocore with the fix, or one built otherwise: leave it be
    # A filtered copy for this client: the rule set's own definitions stay as they are.
    resolver._param_definitions = {k: v for k, v in params.items() if k not in UNREFERENCED}  # type: ignore[union-attr]
    return True
