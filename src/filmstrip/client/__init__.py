"""An async client of the Filmstrip api and bus (what ``filmstrip upload`` is built on).

- :class:`ApiClient`: the HTTP api with a token (hash checks, sessions, photos, uploads).
- :func:`inspect_file`: a file's size, SHA-256 and photo format, by its bytes.
- :func:`upload_file`: one photo, multipart when small, else tus resumable across runs
  (:class:`ResumeStore` keeps each unfinished upload's URL).
- :class:`EventStream`: the client's events as an async iterator that reconnects and
  resumes by itself.
"""

from filmstrip.client.errors import ApiFailure, EventStreamError
from filmstrip.client.events import EventStream, Gap
from filmstrip.client.files import LocalFile, inspect_file
from filmstrip.client.http import ApiClient
from filmstrip.client.resume import ResumeStore
from filmstrip.client.tus import Uploaded, upload_tus
from filmstrip.client.upload import MULTIPART_MAX_BYTES, upload_file

__all__ = [
    "MULTIPART_MAX_BYTES",
    "ApiClient",
    "ApiFailure",
    "EventStream",
    "EventStreamError",
    "Gap",
    "LocalFile",
    "ResumeStore",
    "Uploaded",
    "inspect_file",
    "upload_file",
    "upload_tus",
]
