"""One typed settings object, parsed once from ``FILMSTRIP_*`` environment variables (and
the PaaS conventions ``PORT``, ``DATABASE_URL`` and ``REDIS_URL``)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import msgspec

from filmstrip import keys
from protocols.jobs import PIPELINE_NAMES

PREFIX = "FILMSTRIP_"

# Catalog URLs: sqlite:///relative/path or sqlite:////absolute/path (SQLAlchemy's form),
# or a libpq URL.
SQLITE_SCHEME = "sqlite:///"
POSTGRES_SCHEMES = ("postgresql://", "postgres://")

Port = Annotated[int, msgspec.Meta(ge=0, le=65535)]
Positive = Annotated[int, msgspec.Meta(gt=0)]
NonNegative = Annotated[int, msgspec.Meta(ge=0)]
Quality = Annotated[int, msgspec.Meta(ge=1, le=100)]
Priority = Annotated[int, msgspec.Meta(ge=1, le=10)]


class SettingsError(ValueError):
    """A setting has a value that cannot be used; the message names the variable."""


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """Every knob of every role. Defaults make the embedded (``filmstrip dev``) mode work."""

    # Where embedded state lives: private Redis data, filesystem blobs, SQLite.
    data_dir: str = "./var"
    redis_url: str = "redis://127.0.0.1:6379/0"
    # Whether redis_url names a Redis Cluster: auto asks the server (INFO cluster) at start,
    # so the URL a PaaS hands out works as it is (one that does not answer is taken for a
    # single server); true/false skip the question.
    redis_cluster: str = "auto"
    # Each process's Redis pool (filmstrip/redis_client.py). A call holds a connection only
    # for its round trip, so 50 serve hundreds of concurrent requests; past them a call
    # waits this long for one to come back before failing as "out of connections".
    redis_max_connections: Positive = 50
    redis_pool_wait_s: Annotated[float, msgspec.Meta(gt=0)] = 2.0
    # file:///abs/path or s3://bucket[/prefix]; empty means file://<data_dir>/blobs.
    blob_url: str = ""
    s3_endpoint_url: str = ""
    s3_region: str = "us-east-1"
    s3_access_key_id: str = ""
    s3_secret_access_key: str = ""
    # The catalog: sqlite:///path or postgresql://…; empty means the SQLite file db_path,
    # else <data_dir>/filmstrip.db. load_settings fills it from a PaaS's DATABASE_URL.
    database_url: str = ""
    # The SQLite file, the setting before database_url (still honoured; not with it).
    db_path: str = ""
    # Connections each process keeps to PostgreSQL; its catalog calls run on as many threads.
    database_pool_size: Positive = 4

    api_host: str = "127.0.0.1"
    api_port: Port = 8080
    bus_host: str = "127.0.0.1"
    bus_port: Port = 8081
    # Where browsers reach the bus; empty means ws://<api host>:<bus_port>/ws.
    public_bus_url: str = ""
    # The client side (filmstrip upload): the api to send to, empty meaning
    # http://<api host>:<api port>, and the token to send with it.
    api_url: str = ""
    token: str = ""

    log_level: str = "INFO"
    # JSON lines, or readable ones (false); unset or auto: readable on a terminal.
    log_json: bool | None = None
    # The process umask (octal), set at start by every command (filmstrip/file_modes.py):
    # files holding client data are 0600 and directories 0700. 007 lets a group share them
    # (roles run as different users on one volume).
    umask: str = "077"

    # Upload limits.
    max_upload_bytes: Positive = 200 * 1024 * 1024
    # Bytes of originals one client may store (its photos' sizes; derivatives are not
    # counted); 0 = no quota. Checked on both upload paths before bytes are stored.
    client_quota_bytes: NonNegative = 0

    # HMAC secret for signed blob URLs; empty means one kept in the catalog, made by the
    # first api process to start and shared by all (an older <data_dir>/signing.key is
    # adopted as that key).
    signing_secret: str = ""
    signed_url_ttl_s: Positive = 3600

    # Consistency manager (api): how often it runs, when a blob without a row is an
    # orphan, and when a queued/processing photo without a job is stuck.
    reconcile_interval_s: Annotated[float, msgspec.Meta(gt=0)] = 60.0
    orphan_grace_s: Annotated[float, msgspec.Meta(ge=0)] = 3600.0
    # The orphan sweep lists the whole blob store: at a million photos that is thousands
    # of LIST requests. Orphans come only from crashes and cost only storage, so it runs
    # at most this often (across all api processes), not every round.
    orphan_sweep_interval_s: Annotated[float, msgspec.Meta(gt=0)] = 21_600.0
    stuck_after_s: Annotated[float, msgspec.Meta(ge=0)] = 600.0

    # Queue.
    queue_name: str = "photo-processing"
    worker_concurrency: Positive = 3
    job_attempts: Positive = 3
    job_backoff_ms: NonNegative = 5000
    job_backoff_jitter: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.0
    job_priority: Priority = 5
    visibility_timeout_ms: Positive = 30_000
    max_stalled: NonNegative = 1
    resource_max_deferrals: NonNegative = 5
    shutdown_grace_s: Annotated[float, msgspec.Meta(ge=0)] = 25.0
    limiter_max: NonNegative = 0  # 0 = rate limiter off
    limiter_duration_ms: Positive = 1000
    queue_max_waiting: Positive = 10_000
    # Queue (filmstrip.queue): jobs a worker may hold beyond its concurrency to batch round
    # trips; 0 keeps every waiting job available to whichever worker frees up first.
    worker_prefetch: NonNegative = 0

    # Pipeline.
    default_pipeline: str = "full_processing"
    pipeline_threads: NonNegative = 0  # 0 = number of CPUs
    stage_timeout_s: Annotated[float, msgspec.Meta(gt=0)] = 60.0
    max_pixels: Positive = 100_000_000
    max_dimension: Positive = 65_500
    max_frames: Positive = 1000
    thumbnail_size: Positive = 256
    thumbnail_format: str = "webp"
    thumbnail_quality: Quality = 80
    preview_size: Positive = 1440
    preview_format: str = "jpeg"
    preview_quality: Quality = 80
    optimize_quality: Quality = 80
    # The optimised copy is kept only when it is at least this fraction smaller than the
    # original: a second lossy generation that saves 1-2 % costs quality for nothing.
    optimize_min_saving: Annotated[float, msgspec.Meta(ge=0, lt=1)] = 0.10

    # --- pipeline area (filmstrip.pipeline): decoding, libvips and optimisation knobs ---
    # libvips fail_on level for decoding: none, truncated, error or warning (strictest).
    decode_fail_on: str = "warning"
    # libvips worker threads per operation; 0 = libvips default (one per CPU).
    vips_concurrency: NonNegative = 1
    # libvips operation cache; a server sees each photo once, so keep it tiny.
    vips_cache_max_ops: NonNegative = 0
    vips_cache_max_mb: NonNegative = 0
    thumbhash_size: Annotated[int, msgspec.Meta(ge=8, le=100)] = 32
    optimize_effort: Annotated[int, msgspec.Meta(ge=0, le=6)] = 2
    # AVIF of the original as well as WebP: off by default, it roughly doubles the stage's
    # time and memory (see bench/pipeline_bench.py).
    optimize_avif: bool = False
    optimize_avif_effort: Annotated[int, msgspec.Meta(ge=0, le=9)] = 0
    # Keep the AVIF only when it encoded within this multiple of the WebP time.
    optimize_avif_max_time_ratio: Annotated[float, msgspec.Meta(gt=0)] = 2.0
    # Full-size encodes running at once per process: each holds the whole image plus the
    # encoder's buffers (~90 MB at 12 MP), and more than one per core buys no throughput.
    optimize_concurrency: Positive = 2
    # Run optimization after the photo is announced ready, as a follow-up job at
    # ``deferred_priority`` (10 = the lowest band): fresh uploads' thumbnails go first.
    defer_optimization: bool = True
    deferred_priority: Priority = 10
    # With a remote blob store, the worker keeps each original it fetched on local disk
    # for the photo's follow-up job (filmstrip/blobs/local_cache.py), shared by the
    # workers of a host. 0 turns it off; entries older than the age are dropped.
    original_cache_mb: NonNegative = 1024
    original_cache_max_age_s: Annotated[float, msgspec.Meta(gt=0)] = 3600.0
    # Empty means <data_dir>/cache/originals.
    original_cache_dir: str = ""

    # --- Event bus (services/bus) ------------------------------------------------------
    # WebSocket ping interval; a socket that misses its pong is closed.
    bus_heartbeat_s: Annotated[float, msgspec.Meta(gt=0)] = 20.0
    # A socket that has not identified by then is closed with 1008.
    bus_identify_timeout_s: Annotated[float, msgspec.Meta(gt=0)] = 10.0
    # Larger client frames close the socket with 1009.
    bus_max_message_bytes: Positive = 4096
    # Frames queued per socket before it counts as too slow and is closed with 1013.
    bus_send_queue: Positive = 256
    # Client messages per socket: a token bucket of this rate and burst.
    bus_rate_per_s: Annotated[float, msgspec.Meta(gt=0)] = 20.0
    bus_rate_burst: Positive = 40
    # Sockets one client may hold open, on all bus processes together (counted in Redis).
    bus_max_sockets_per_client: Positive = 20
    # How long a close handshake may take before the connection is dropped.
    bus_close_timeout_s: Annotated[float, msgspec.Meta(gt=0)] = 5.0
    # The per-client replay stream (written by EventPublisher, read by the bus on resume):
    # at most this many events, none older than this.
    bus_replay_maxlen: Positive = 1000
    bus_replay_age_s: Positive = 86_400
    # After identify, live events wait this long at most for the client's resume (and its
    # subscribes before it), so replayed and live events reach it in stream order.
    bus_resume_hold_s: Annotated[float, msgspec.Meta(ge=0)] = 1.0
    # Photo rooms one socket may be in.
    bus_max_photos_per_socket: Positive = 1000
    # Identified sockets' tokens are checked again this often; a revoked token's sockets
    # are closed with 1008.
    bus_token_recheck_s: Annotated[float, msgspec.Meta(gt=0)] = 60.0
    # Each bus process refreshes its presence record (socket counts) this often.
    bus_presence_interval_s: Annotated[float, msgspec.Meta(gt=0)] = 10.0

    # --- Resumable uploads (tus 1.0 at /v1/uploads, services/api/tus) --------------------
    # Where partial uploads live with a file blob store; empty means <data_dir>/uploads.
    # With an S3 store they live in the catalog and the bucket (services/api/tus/shared.py).
    tus_dir: str = ""
    # A partial upload idle this long (no PATCH) expires and the sweeper deletes it.
    tus_expiry_s: Annotated[float, msgspec.Meta(gt=0)] = 86_400.0
    tus_sweep_interval_s: Annotated[float, msgspec.Meta(gt=0)] = 300.0
    # A PATCH whose body stalls this long is ended; what arrived so far is kept.
    tus_idle_timeout_s: Annotated[float, msgspec.Meta(gt=0)] = 30.0
    # Uploads one client may have open (created, not yet a photo, not expired), and the
    # sum of their Upload-Lengths: what one client can make the api hold on disk.
    tus_max_open_per_client: Positive = 100
    tus_max_open_bytes_per_client: Positive = 5 * 1024 * 1024 * 1024
    # --- Web gallery, dashboard and metrics (services/api/web.py, filmstrip.metrics) -------
    # The worker has no HTTP server of its own: it serves GET /metrics here (0 = off).
    worker_metrics_host: str = "127.0.0.1"
    worker_metrics_port: Port = 9101
    # --- Hostile input (services/api/ratelimit.py, pacing.py, serving.py) ---------------
    # Requests per second per client (by token) and per IP for unauthenticated requests:
    # a token bucket in Redis of this rate and burst, shared by every api process.
    api_rate_per_s: Annotated[float, msgspec.Meta(gt=0)] = 100.0
    api_rate_burst: Positive = 500
    # An upload body that sends no bytes for this long is cut with 408.
    upload_idle_timeout_s: Annotated[float, msgspec.Meta(gt=0)] = 30.0
    # After that long, an upload averaging fewer bytes per second than this is cut too.
    upload_min_bytes_per_s: NonNegative = 1024
    # A connection must deliver a request's line and headers within this of connecting or
    # of its last response (slowloris); it is aiohttp's keep-alive timeout, which closes a
    # connection still waiting for headers, so idle keep-alive connections go too.
    api_header_timeout_s: Annotated[float, msgspec.Meta(gt=0)] = 15.0

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir)

    @property
    def effective_blob_url(self) -> str:
        if self.blob_url:
            return self.blob_url
        return (self.data_path / "blobs").resolve().as_uri()

    @property
    def effective_api_url(self) -> str:
        if self.api_url:
            return self.api_url.rstrip("/")
        host = "127.0.0.1" if self.api_host in ("0.0.0.0", "") else self.api_host
        return f"http://{host}:{self.api_port}"

    @property
    def effective_tus_dir(self) -> Path:
        return Path(self.tus_dir) if self.tus_dir else self.data_path / "uploads"

    @property
    def effective_original_cache_dir(self) -> Path:
        if self.original_cache_dir:
            return Path(self.original_cache_dir)
        return self.data_path / "cache" / "originals"

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return sqlite_url(self.db_path or str(self.data_path / "filmstrip.db"))

    @property
    def redis_cluster_mode(self) -> bool | None:
        """True or False as set, None for ``auto`` or empty (ask the server)."""
        low = self.redis_cluster.strip().lower()
        return None if low in ("auto", "") else _coerce(low, bool)

    @property
    def embedded_redis_dir(self) -> Path:
        """Where ``filmstrip dev``'s private redis-server keeps its files."""
        return self.data_path / "redis"

    @property
    def file_umask(self) -> int:
        return int(self.umask, 8)


def sqlite_url(path: str) -> str:
    """The catalog URL of the SQLite file ``path`` (relative to the working directory, or
    absolute)."""
    return SQLITE_SCHEME + path


def database_backend(url: str) -> str | None:
    """``"sqlite"`` or ``"postgresql"`` by the URL's scheme; None for any other URL."""
    if url.startswith(SQLITE_SCHEME) and len(url) > len(SQLITE_SCHEME):
        return "sqlite"
    if url.startswith(POSTGRES_SCHEMES):
        return "postgresql"
    return None


def sqlite_path(url: str) -> str:
    """The file of a ``sqlite:///`` URL."""
    return url.removeprefix(SQLITE_SCHEME)


def _env_name(field: str) -> str:
    return PREFIX + field.upper()


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Parse ``FILMSTRIP_*`` variables (and the PaaS ``PORT``, ``DATABASE_URL`` and
    ``REDIS_URL``) into :class:`Settings`.

    Raises :class:`SettingsError` naming the offending variable.
    """
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    hints = msgspec.structs.fields(Settings)
    for field in hints:
        name = _env_name(field.name)
        raw = env.get(name)
        if raw is None:
            continue
        try:
            values[field.name] = msgspec.convert(_coerce(raw, field.type), field.type, strict=False)
        except (msgspec.ValidationError, ValueError) as exc:
            raise SettingsError(f"{name}={raw!r} is not valid: {exc}") from None
    # Which variable each URL came from, for the messages of _check.
    sources = {"database_url": _env_name("database_url"), "redis_url": _env_name("redis_url")}
    if "database_url" in values and "db_path" in values:
        raise SettingsError(
            f"{_env_name('database_url')} and {_env_name('db_path')} are both set: keep "
            f"{_env_name('database_url')} (sqlite:///path or postgresql://…)"
        )
    # A PaaS hands us DATABASE_URL and REDIS_URL; our own variables win over them.
    if "database_url" not in values and "db_path" not in values and env.get("DATABASE_URL"):
        values["database_url"] = env["DATABASE_URL"]
        sources["database_url"] = "DATABASE_URL"
    if "redis_url" not in values and env.get("REDIS_URL"):
        values["redis_url"] = env["REDIS_URL"]
        sources["redis_url"] = "REDIS_URL"
    # A PaaS hands us PORT for the web role; it wins over our own setting and must be
    # reachable from outside the container.
    if env.get("PORT"):
        try:
            values["api_port"] = msgspec.convert(env["PORT"], Port, strict=False)
        except msgspec.ValidationError as exc:
            raise SettingsError(f"PORT={env['PORT']!r} is not valid: {exc}") from None
        values.setdefault("api_host", "0.0.0.0")
    settings = Settings(**values)
    _check(settings, sources)
    return settings


def redacted_url(url: str) -> str:
    """``url`` without a password, for messages."""
    scheme, sep, rest = url.partition("://")
    creds, at, host = rest.rpartition("@")
    if not (sep and at and ":" in creds):
        return url
    return f"{scheme}://{creds.split(':', 1)[0]}:***@{host}"


def _coerce(raw: str, typ: Any) -> Any:
    if typ == bool | None and raw.strip().lower() == "auto":
        return None
    if typ in (bool, bool | None):
        low = raw.strip().lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off", ""):
            return False
        raise ValueError("expected true/false")
    return raw


def _check(s: Settings, sources: Mapping[str, str]) -> None:
    url = s.effective_blob_url
    if not (url.startswith("file://") or url.startswith("s3://")):
        raise SettingsError(f"{_env_name('blob_url')}={url!r} must start with file:// or s3://")
    if not (s.redis_url.startswith(("redis://", "rediss://", "unix://"))):
        raise SettingsError(
            f"{sources['redis_url']}={s.redis_url!r} must be a redis://, rediss:// or unix:// URL"
        )
    if s.database_url and database_backend(s.database_url) is None:
        raise SettingsError(
            f"{sources['database_url']}={redacted_url(s.database_url)!r} must be a sqlite:///path "
            "(sqlite:////path when absolute) or postgresql:// URL"
        )
    try:
        cluster = s.redis_cluster_mode
    except ValueError:
        raise SettingsError(
            f"{_env_name('redis_cluster')}={s.redis_cluster!r} must be auto, true or false"
        ) from None
    if cluster and s.redis_url.startswith("unix://"):
        raise SettingsError(
            f"{_env_name('redis_url')}: a Redis Cluster is reached over redis:// or rediss://"
        )
    try:
        keys.queue_tag(s.queue_name)
    except ValueError as exc:
        raise SettingsError(f"{_env_name('queue_name')}: {exc}") from None
    for name in ("thumbnail_format", "preview_format"):
        if getattr(s, name) not in ("webp", "jpeg", "avif", "png"):
            raise SettingsError(f"{_env_name(name)} must be one of webp, jpeg, avif, png")
    if s.default_pipeline not in PIPELINE_NAMES:
        raise SettingsError(
            f"{_env_name('default_pipeline')}={s.default_pipeline!r} is not a pipeline: "
            f"use one of {', '.join(PIPELINE_NAMES)}"
        )
    if s.decode_fail_on not in ("none", "truncated", "error", "warning"):
        raise SettingsError(
            f"{_env_name('decode_fail_on')} must be one of none, truncated, error, warning"
        )
    if not re.fullmatch(r"0?[0-7]{3}", s.umask):
        raise SettingsError(
            f"{_env_name('umask')}={s.umask!r} must be three octal digits, e.g. 077"
        )
    if s.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise SettingsError(f"{_env_name('log_level')} must be DEBUG, INFO, WARNING or ERROR")
