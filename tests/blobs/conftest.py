"""Fixtures for the blob store suites: a moto S3 server for the whole run."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.moto_server import MotoServer


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    """One moto S3 endpoint on loopback; tests may stop and start it to fake an outage."""
    server = MotoServer()
    server.start()
    yield server
    server.stop()
