"""HTTP metrics recorded by the api's metrics middleware."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

#: Latency buckets (seconds) from a fast JSON read to a large streamed upload.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

REQUESTS = Counter(
    "filmstrip_http_requests_total",
    "HTTP requests handled, by route template, method and status.",
    ["route", "method", "status"],
)
LATENCY = Histogram(
    "filmstrip_http_request_duration_seconds",
    "Time from request to the last byte of the response, by route template and method.",
    ["route", "method"],
    buckets=LATENCY_BUCKETS,
)
UPLOAD_BYTES = Counter(
    "filmstrip_upload_bytes_total",
    "Request body bytes received by the upload route (accepted or not).",
)
