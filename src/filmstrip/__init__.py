"""Filmstrip core: settings, blob stores, catalog, queue, events and pipeline stages."""

__version__ = "0.1.0"
