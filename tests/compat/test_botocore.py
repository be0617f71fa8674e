"""The botocore internals ``filmstrip/compat/botocore.py`` relies on: this fails loudly when
a botocore upgrade moves them, so S3 requests cannot silently go back to resolving their
endpoint every time or waiting a round trip for ``100 Continue`` before each body."""

from __future__ import annotations

from typing import Any

import botocore
import botocore.session
from botocore.handlers import BUILTIN_HANDLERS, convert_body_to_file_like_object

from filmstrip.compat import botocore as compat


def _client() -> Any:
    return botocore.session.get_session().create_client(
        "s3", region_name="us-east-1", endpoint_url="http://127.0.0.1:9",
        aws_access_key_id="x", aws_secret_access_key="y",
    )  # fmt: skip


def test_botocore_is_the_release_the_internals_were_read_from() -> None:
    assert botocore.__version__.startswith(compat.BOTOCORE_VERSION + "."), (
        f"botocore {botocore.__version__}: check whether its S3 endpoint cache still keys on"
        " Key/Prefix/CopySource and whether PUT bodies still become file objects, then"
        " update filmstrip/compat/botocore.py"
    )


def test_a_client_keys_its_endpoints_on_the_dropped_parameters_until_told_not_to() -> None:
    client, other = _client(), _client()
    assert client._ruleset_resolver._param_definitions.keys() >= compat.UNREFERENCED
    assert compat.share_endpoint_resolution(client)
    assert not compat.UNREFERENCED & client._ruleset_resolver._param_definitions.keys()
    assert not compat.share_endpoint_resolution(client)
    # Only that client: the rule set's own definitions are left as they were.
    assert other._ruleset_resolver._param_definitions.keys() >= compat.UNREFERENCED


def test_put_bodies_stay_bytes_once_the_builtin_handler_is_unregistered() -> None:
    for event in compat.BODY_EVENTS:
        assert any(h[:2] == (event, convert_body_to_file_like_object) for h in BUILTIN_HANDLERS)
    client = _client()

    def body_after_parameter_build(operation: str) -> object:
        params = {"Bucket": "b", "Key": "k", "Body": b"abc"}
        client.meta.events.emit(
            f"before-parameter-build.s3.{operation}", params=params, context={},
            model=client.meta.service_model.operation_model(operation),
        )  # fmt: skip
        return params["Body"]

    assert hasattr(body_after_parameter_build("PutObject"), "read")
    compat.send_bodies_as_bytes(client)
    assert body_after_parameter_build("PutObject") == b"abc"
    assert body_after_parameter_build("UploadPart") == b"abc"


def test_a_request_signed_outside_a_client_follows_the_config_s_payload_signing() -> None:
    import hashlib

    from botocore.awsrequest import AWSRequest
    from botocore.config import Config
    from botocore.credentials import Credentials

    def content_hash(sign: bool) -> str:
        request = AWSRequest(method="PUT", url="http://127.0.0.1:9/b/k", data=b"abc")
        config = Config(s3={"payload_signing_enabled": sign})
        compat.sign_s3_request(
            request, credentials=Credentials("x", "y"), region="us-east-1", config=config
        )
        assert request.headers["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=x/")
        return str(request.headers["X-Amz-Content-SHA256"])

    assert content_hash(True) == hashlib.sha256(b"abc").hexdigest()
    # Over plain http: only the config can turn it off.
    assert content_hash(False) == "UNSIGNED-PAYLOAD"


def test_a_known_body_hash_signs_as_the_hash_botocore_computes() -> None:
    import hashlib

    from botocore.awsrequest import AWSRequest
    from botocore.config import Config
    from botocore.credentials import Credentials

    def signed(sign: bool, sha256: str | None) -> str:
        request = AWSRequest(method="PUT", url="http://127.0.0.1:9/b/k", data=b"abc")
        compat.sign_s3_request(
            request, credentials=Credentials("x", "y"), region="us-east-1",
            config=Config(s3={"payload_signing_enabled": sign}), sha256=sha256,
        )  # fmt: skip
        assert "x-amz-content-sha256" in request.headers["Authorization"]  # a signed header
        return str(request.headers["X-Amz-Content-SHA256"])

    known = hashlib.sha256(b"abc").hexdigest()
    assert signed(True, known) == signed(True, None) == known
    assert signed(True, "0" * 64) == "0" * 64  # taken as given, not computed again
    # Unsigned bodies stay unsigned whatever the caller knows.
    assert signed(False, known) == signed(False, None) == "UNSIGNED-PAYLOAD"
