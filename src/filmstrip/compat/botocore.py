"""botocore below its documented surface, for three measured gains. Fits botocore 1.40.

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

A request signed outside a client (``filmstrip.blobs.s3_direct``): botocore's
``S3SigV4Auth`` takes whether to sign the body's SHA-256 from the client config it finds
in the request's ``context``, which only a client's own requests carry. A body whose
SHA-256 the caller already has (an upload hashed as it streamed in) is not hashed again:
the signer's ``payload`` is given it, where ``_should_sha256_sign_payload`` says the body is
signed (~2 ms of CPU a 3 MB upload).

``tests/compat/test_botocore.py`` fails loudly when any of these internals changes;
``tests/blobs/test_s3_endpoints.py`` and ``test_s3_bodies.py`` check what they do.
"""

from __future__ import annotations

from typing import Any

from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
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


class _KnownBodyAuth(S3SigV4Auth):  # type: ignore[misc]  # botocore is untyped
    """S3's signer, told its body's SHA-256 rather than hashing the body."""

    def __init__(self, credentials: Any, region: str, sha256: str) -> None:
        super().__init__(credentials, "s3", region)
        self.known_sha256 = sha256

    def payload(self, request: AWSRequest) -> str:
        if self._should_sha256_sign_payload(request):
            return self.known_sha256
        return str(super().payload(request))


def sign_s3_request(
    request: AWSRequest,
    *,
    credentials: Any,
    region: str,
    config: Any,
    sha256: str | None = None,
) -> None:
    """Sign ``request`` (SigV4, S3's rules) as a client with ``config`` would: its body's
    SHA-256 (``sha256`` if given) signed or not as ``config.s3['payload_signing_enabled']`` says."""
    request.context["client_config"] = config
    if sha256 is None:
        S3SigV4Auth(credentials, "s3", region).add_auth(request)
    else:
        _KnownBodyAuth(credentials, region, sha256).add_auth(request)


def send_bodies_as_bytes(client: Any) -> None:
    """Keep ``client``'s PutObject and UploadPart bodies as bytes (no 100-continue)."""
    for event in BODY_EVENTS:
        client.meta.events.unregister(event, convert_body_to_file_like_object)
