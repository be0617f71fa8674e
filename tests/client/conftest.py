"""The client library against a real bus (the bus tests' fixtures) and a real api."""

from tests.bus.conftest import (
    bus,
    bus_process,
    bus_settings,
    catalog,
    http,
    make_account,
    publisher,
    start_bus,
)

__all__ = [
    "bus",
    "bus_process",
    "bus_settings",
    "catalog",
    "http",
    "make_account",
    "publisher",
    "start_bus",
]
