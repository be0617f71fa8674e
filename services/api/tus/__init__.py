"""Resumable uploads: the tus 1.0 protocol at ``/v1/uploads`` (see ``routes.setup_tus``)."""

from filmstrip.services.api.tus.routes import setup_tus

__all__ = ["setup_tus"]
