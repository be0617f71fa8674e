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
