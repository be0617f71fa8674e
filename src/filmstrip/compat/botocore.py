"""botocore below its documented surface, for two measured gains. Fits botocore 1.40.

One endpoint resolution per bucket, not per object: a backport of botocore's fix for its
S3 endpoint cache (boto/botocore#3528, merged upstream as #3692). botocore resolves every
request's endpoint by walking S3's endpoint rule set (~0.4 ms of CPU) behind a cache keyed
by all the rule set's parameters. ``Key``, ``Prefix`` and ``CopySource`` are among them
though no rule reads them, so for a store whose every object key is new the cache never
hits. aioboto3 15.5 pins a botocore from before the fix; this drops the three from the
client's private ``_ruleset_resolver._param_definitions``, as the fix does.

PUT bodies go out as the bytes they are, without ``Expect: 100-continue``. botocore's
built-in handler ``convert_body_to_file_like_object`` wraps a PutObject or UploadPart body
given as bytes in a ``BytesIO``, and every request with a file-like body gets ``Expect:
100-continue``: the client sends the headers, waits a round trip for the store's ``100
Continue``, and only then the body, which aiohttp writes 64 KiB per turn of the event
loop. Every body the store sends is already in memory and at most one part (8 MiB), so the
wait buys nothing: it adds a round trip to each PUT (measured against moto on loopback:
15-30% of a 100 kB PUT's client CPU, 10-15% of the server's, and a fifth of its time).

``tests/compat/test_botocore.py`` fails loudly when any of these internals changes;
``tests/blobs/test_s3_endpoints.py`` and ``test_s3_bodies.py`` check what they do.
"""

from __future__ import annotations

from typing import Any

from botocore.handlers import convert_body_to_file_like_object

#: The botocore release these internals were read from.
BOTOCORE_VERSION = "1.40"

UNREFERENCED = frozenset({"Key", "Prefix", "CopySource"})

# The operations whose bytes botocore turns into a file object (botocore/handlers.py).
BODY_EVENTS = ("before-parameter-build.s3.PutObject", "before-parameter-build.s3.UploadPart")


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


def send_bodies_as_bytes(client: Any) -> None:
    """Keep ``client``'s PutObject and UploadPart bodies as bytes (no 100-continue)."""
    for event in BODY_EVENTS:
        client.meta.events.unregister(event, convert_body_to_file_like_object)
