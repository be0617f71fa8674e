"""One typed settings object, parsed once from ``FILMSTRIP_*`` environment variables (and
the PaaS conventions ``PORT``, ``DATABASE_URL`` and ``REDIS_URL``)."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import msgspec

from filmstrip import keys
from filmstrip.protocols.jobs import PIPELINE_NAMES

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
Seconds = Annotated[float, msgspec.Meta(gt=0)]
SecondsOrZero = Annotated[float, msgspec.Meta(ge=0)]
FailOn = Literal["none", "truncated", "error", "warning"]


# A web origin as browsers send it: scheme, host and an optional port, nothing more (apps
# in a mobile web view send their own schemes, e.g. capacitor://localhost).
_ORIGIN = re.compile(r"[a-z][a-z0-9+.-]*://(\[[0-9a-f:.]+\]|[a-z0-9.-]+)(:[0-9]{1,5})?")


class SettingsError(ValueError):
    """A setting has a value that cannot be used; the message names the variable."""


def _prefixed(**fields: str) -> Callable[[str], str]:
    """A group's rename: ``api="host port"`` names fields host and port's variables api_host
    and api_port. A field's variable is FILMSTRIP_ + its encoded name, upper-cased; each group
    below is one area's settings, read by the package its docstring names."""
    table = {name: f"{prefix}_{name}" for prefix, names in fields.items() for name in names.split()}
    return lambda name: table.get(name, name)


class FileSettings(msgspec.Struct, frozen=True, kw_only=True):
    """This host's files (every command; filmstrip/file_modes.py)."""

    # Where embedded state lives: private Redis data, filesystem blobs, SQLite.
    data_dir: str = "./var"
    # The process umask (octal), set at start by every command: files holding client data
    # are 0600, directories 0700; 007 lets a group share them (roles as different users).
    umask: str = "077"


class LogSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Logging (filmstrip/logs.py)."""

    log_level: str = "INFO"
    # JSON lines, or readable ones (false); unset or auto: readable on a terminal.
    log_json: bool | None = None


class RedisSettings(msgspec.Struct, frozen=True, kw_only=True, rename=lambda name: "redis_" + name):
    """The Redis every role shares (filmstrip/redis_client.py)."""

    url: str = "redis://127.0.0.1:6379/0"
    # Whether url names a Redis Cluster: auto asks the server (INFO cluster) at start,
    # so the URL a PaaS hands out works as it is (one that does not answer is taken for a
    # single server); true/false skip the question.
    cluster: str = "auto"
    # Each process's pool. A call holds a connection only for its round trip, so 50 serve
    # hundreds of concurrent requests; past them a call waits this long for one to come
    # back before failing as "out of connections".
    max_connections: Positive = 50
    pool_wait_s: Seconds = 2.0

    @property
    def cluster_mode(self) -> bool | None:
        """True or False as set, None for ``auto`` or empty (ask the server)."""
        low = self.cluster.strip().lower()
        return None if low in ("auto", "") else _coerce(low, bool)


class BlobSettings(msgspec.Struct, frozen=True, kw_only=True):
    """The blob store (filmstrip.blobs)."""

    # file:///abs/path or s3://bucket[/prefix]; empty means file://<data_dir>/blobs.
    blob_url: str = ""
    s3_endpoint_url: str = ""
    s3_region: str = "us-east-1"
    s3_access_key_id: str = ""
    s3_secret_access_key: str = ""
    # Whether a PUT's signature covers its body's SHA-256; unset or auto: over plain http
    # only (over https, TLS already keeps the body from being changed on the way).
    s3_sign_payload: bool | None = None


class CatalogSettings(msgspec.Struct, frozen=True, kw_only=True):
    """The catalog (filmstrip.catalog)."""

    # sqlite:///path or postgresql://…; empty means the SQLite file db_path, else
    # <data_dir>/filmstrip.db. load_settings fills it from a PaaS's DATABASE_URL.
    database_url: str = ""
    # The SQLite file, the setting before database_url (still honoured; not with it).
    db_path: str = ""
    # Connections each process keeps to PostgreSQL; its catalog calls run on as many threads.
    database_pool_size: Positive = 4


class ApiSettings(
    msgspec.Struct,
    frozen=True,
    kw_only=True,
    rename=_prefixed(api="host port rate_per_s rate_burst header_timeout_s"),
):
    """The api role (services/api)."""

    host: str = "127.0.0.1"
    port: Port = 8080
    # Where browsers reach the bus; empty means ws://<api host>:<bus port>/ws.
    public_bus_url: str = ""
    max_upload_bytes: Positive = 200 * 1024 * 1024
    # Bytes of originals one client may store (its photos' sizes; derivatives are not
    # counted); 0 = no quota. Checked on both upload paths before bytes are stored.
    client_quota_bytes: NonNegative = 0
    # HMAC secret for signed blob URLs; empty means one kept in the catalog, made by the
    # first api process to start and shared by all (an older <data_dir>/signing.key is
    # adopted as that key).
    signing_secret: str = ""
    # A signed URL expires this long after it is made, rounded up to the next whole minute
    # (auth/signing.py: answers within one minute share cacheable URLs): up to 59 s later.
    signed_url_ttl_s: Positive = 3600
    # Consistency manager: how often it runs, when a blob without a row is an orphan, and
    # when a queued/processing photo without a job is stuck.
    reconcile_interval_s: Seconds = 60.0
    orphan_grace_s: SecondsOrZero = 3600.0
    # The orphan sweep lists the whole blob store: at a million photos that is thousands
    # of LIST requests. Orphans come only from crashes and cost only storage, so it runs
    # at most this often (across all api processes), not every round.
    orphan_sweep_interval_s: Seconds = 21_600.0
    stuck_after_s: SecondsOrZero = 600.0
    # Hostile input (ratelimit.py, pacing.py, serving.py). Requests per second per client
    # (by token) and per IP for unauthenticated requests: a token bucket in Redis of this
    # rate and burst, shared by every api process.
    rate_per_s: Seconds = 100.0
    rate_burst: Positive = 500
    # An upload body that sends no bytes for this long is cut with 408.
    upload_idle_timeout_s: Seconds = 30.0
    # After that long, an upload averaging fewer bytes per second than this is cut too.
    upload_min_bytes_per_s: NonNegative = 1024
    # A connection must deliver a request's line and headers within this of connecting or
    # of its last response (slowloris); it is aiohttp's keep-alive timeout, which closes a
    # connection still waiting for headers, so idle keep-alive connections go too.
    header_timeout_s: Seconds = 15.0
    # Origins whose web apps may call /v1 from a browser (services/api/cors.py): exact
    # scheme://host[:port], comma-separated, or * for any; empty: none (the gallery,
    # served by the api itself, needs none).
    cors_origins: str = ""

    @property
    def cors_origin_list(self) -> tuple[str, ...]:
        """``cors_origins`` as its origins, lower-case as browsers send them (``("*",)`` for
        any, empty for none)."""
        origins = (o.strip().rstrip("/").lower() for o in self.cors_origins.split(","))
        return tuple(o for o in origins if o)


class TusSettings(msgspec.Struct, frozen=True, kw_only=True, rename=lambda name: "tus_" + name):
    """Resumable uploads (tus 1.0 at /v1/uploads, services/api/tus)."""

    # Where partial uploads live with a file blob store; empty means <data_dir>/uploads.
    # With an S3 store they live in the catalog and the bucket (services/api/tus/shared.py).
    dir: str = ""
    # A partial upload idle this long (no PATCH) expires and the sweeper deletes it.
    expiry_s: Seconds = 86_400.0
    sweep_interval_s: Seconds = 300.0
    # A PATCH whose body stalls this long is ended; what arrived so far is kept.
    idle_timeout_s: Seconds = 30.0
    # Uploads one client may have open (created, not yet a photo, not expired), and the
    # sum of their Upload-Lengths: what one client can make the api hold on disk.
    max_open_per_client: Positive = 100
    max_open_bytes_per_client: Positive = 5 * 1024 * 1024 * 1024


class BusSettings(msgspec.Struct, frozen=True, kw_only=True, rename=lambda name: "bus_" + name):
    """The event bus role (services/bus)."""

    host: str = "127.0.0.1"
    port: Port = 8081
    # WebSocket ping interval; a socket that misses its pong is closed.
    heartbeat_s: Seconds = 20.0
    # A socket that has not identified by then is closed with 1008.
    identify_timeout_s: Seconds = 10.0
    # Larger client frames close the socket with 1009. The largest client message is an
    # identify at its schema's limits (protocols/ws.py: a 512-char token, a 128-char
    # session_id, a 39-char last_event_id, 100 photo_ids of 128 chars): 14.0 KB as
    # json.dumps writes it by default, 14.4 KB with indent=2 (a real one, with UUIDs, is
    # 4.2 KB). 32 KiB is over twice that, and still a bound a hostile frame cannot abuse.
    max_message_bytes: Positive = 32 * 1024
    # Frames queued per socket before it counts as too slow and is closed with 1013.
    send_queue: Positive = 256
    # Client messages per socket: a token bucket of this rate and burst.
    rate_per_s: Seconds = 20.0
    rate_burst: Positive = 40
    # Sockets one client may hold open, on all bus processes together (counted in Redis).
    max_sockets_per_client: Positive = 20
    # How long a close handshake may take before the connection is dropped.
    close_timeout_s: Seconds = 5.0
    # The per-client replay stream (written by EventPublisher, read by the bus on resume):
    # at most this many events, none older than this.
    replay_maxlen: Positive = 1000
    replay_age_s: Positive = 86_400
    # Photo rooms one socket may be in.
    max_photos_per_socket: Positive = 1000
    # Identified sockets' tokens are checked again this often (a revoked one's: 1008).
    token_recheck_s: Seconds = 60.0
    # Each bus process refreshes its presence record (socket counts) this often.
    presence_interval_s: Seconds = 10.0


# The queue's variables keep the names they had before the queue had a group.
_QUEUE = _prefixed(
    queue="name max_waiting",
    worker="concurrency prefetch",
    job="attempts backoff_ms backoff_jitter priority",
)


class QueueSettings(msgspec.Struct, frozen=True, kw_only=True, rename=_QUEUE):
    """What producers and consumers of the job queue agree on (filmstrip.queue)."""

    name: str = "photo-processing"
    concurrency: Positive = 3
    # Jobs a worker may hold beyond its concurrency to batch round trips (fewer for short
    # jobs); 0 keeps every waiting job available to whichever worker frees up first.
    prefetch: NonNegative = 0
    attempts: Positive = 3
    backoff_ms: NonNegative = 5000
    backoff_jitter: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.0
    priority: Priority = 5
    visibility_timeout_ms: Positive = 30_000
    max_stalled: NonNegative = 1
    resource_max_deferrals: NonNegative = 5
    shutdown_grace_s: SecondsOrZero = 25.0
    limiter_max: NonNegative = 0  # 0 = rate limiter off
    limiter_duration_ms: Positive = 1000
    max_waiting: Positive = 10_000


class JobSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Which jobs a photo gets (filmstrip.photos)."""

    default_pipeline: str = "full_processing"
    # Run optimization after the photo is announced ready, as a follow-up job at
    # ``deferred_priority`` (10 = the lowest band): fresh uploads' thumbnails go first.
    defer_optimization: bool = True
    deferred_priority: Priority = 10


class WorkerSettings(
    msgspec.Struct,
    frozen=True,
    kw_only=True,
    rename=_prefixed(worker="metrics_host metrics_port cpu_slice_ms"),
):
    """The worker role (services/worker)."""

    pipeline_threads: NonNegative = 0  # 0 = number of CPUs
    # The pipeline threads run as batch work in slices this long (filmstrip/cpu_slices.py):
    # for more workers than cores on a host. Off by default: on one machine it lengthened
    # the soak's upload p99 (bench/README.md).
    cpu_slice_ms: Annotated[int, msgspec.Meta(ge=0, le=100)] = 0
    # With a remote blob store, the worker keeps each original it fetched on local disk
    # for the photo's follow-up job (filmstrip/blobs/local_cache.py), shared by the
    # workers of a host. 0 turns it off; entries older than the age are dropped.
    original_cache_mb: NonNegative = 1024
    original_cache_max_age_s: Seconds = 3600.0
    # Empty means <data_dir>/cache/originals.
    original_cache_dir: str = ""
    # The worker has no HTTP server of its own: it serves GET /metrics here (0 = off).
    metrics_host: str = "127.0.0.1"
    metrics_port: Port = 9101


class PipelineSettings(
    msgspec.Struct, frozen=True, kw_only=True, rename={"fail_on": "decode_fail_on"}
):
    """Limits, rendition sizes and encoder settings: what every stage reads (filmstrip.pipeline)."""

    max_pixels: Positive = 100_000_000
    max_dimension: Positive = 65_500
    max_frames: Positive = 1000
    # libvips fail_on level for decoding: none, truncated, error or warning (strictest).
    fail_on: FailOn = "warning"
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
    optimize_effort: Annotated[int, msgspec.Meta(ge=0, le=6)] = 2
    # AVIF of the original as well as WebP: off by default, it roughly doubles the stage's
    # time and memory (see bench/pipeline_bench.py).
    optimize_avif: bool = False
    optimize_avif_effort: Annotated[int, msgspec.Meta(ge=0, le=9)] = 0
    # Keep the AVIF only when it encoded within this multiple of the WebP time.
    optimize_avif_max_time_ratio: Seconds = 2.0
    # Full-size encodes running at once per process: each holds the whole image plus the
    # encoder's buffers (~90 MB at 12 MP), and more than one per core buys no throughput.
    optimize_concurrency: Positive = 2
    thumbhash_size: Annotated[int, msgspec.Meta(ge=8, le=100)] = 32
    stage_timeout_s: Seconds = 60.0
    # libvips worker threads per operation; 0 = libvips default (one per CPU).
    vips_concurrency: NonNegative = 1
    # libvips operation cache; a server sees each photo once, so keep it tiny.
    vips_cache_max_ops: NonNegative = 0
    vips_cache_max_mb: NonNegative = 0

    @property
    def rendition_size(self) -> int:
        """The longest edge of the one shared decode every smaller rendition is cut from."""
        return max(self.preview_size, self.thumbnail_size)


class ClientSettings(msgspec.Struct, frozen=True, kw_only=True):
    """The client side (filmstrip upload)."""

    # The api to send to, empty meaning http://<api host>:<api port>, and the token.
    api_url: str = ""
    token: str = ""


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """Every role's settings, one group per area. Defaults make ``filmstrip dev`` work."""

    files: FileSettings = msgspec.field(default_factory=FileSettings)
    logs: LogSettings = msgspec.field(default_factory=LogSettings)
    redis: RedisSettings = msgspec.field(default_factory=RedisSettings)
    blobs: BlobSettings = msgspec.field(default_factory=BlobSettings)
    catalog: CatalogSettings = msgspec.field(default_factory=CatalogSettings)
    api: ApiSettings = msgspec.field(default_factory=ApiSettings)
    tus: TusSettings = msgspec.field(default_factory=TusSettings)
    bus: BusSettings = msgspec.field(default_factory=BusSettings)
    queue: QueueSettings = msgspec.field(default_factory=QueueSettings)
    jobs: JobSettings = msgspec.field(default_factory=JobSettings)
    worker: WorkerSettings = msgspec.field(default_factory=WorkerSettings)
    pipeline: PipelineSettings = msgspec.field(default_factory=PipelineSettings)
    client: ClientSettings = msgspec.field(default_factory=ClientSettings)

    @property
    def data_path(self) -> Path:
        return Path(self.files.data_dir)

    @property
    def effective_blob_url(self) -> str:
        return self.blobs.blob_url or (self.data_path / "blobs").resolve().as_uri()

    @property
    def effective_api_url(self) -> str:
        if self.client.api_url:
            return self.client.api_url.rstrip("/")
        host = "127.0.0.1" if self.api.host in ("0.0.0.0", "") else self.api.host
        return f"http://{host}:{self.api.port}"

    @property
    def effective_tus_dir(self) -> Path:
        return Path(self.tus.dir) if self.tus.dir else self.data_path / "uploads"

    @property
    def effective_original_cache_dir(self) -> Path:
        return Path(self.worker.original_cache_dir or self.data_path / "cache" / "originals")

    @property
    def effective_database_url(self) -> str:
        return self.catalog.database_url or sqlite_url(
            self.catalog.db_path or str(self.data_path / "filmstrip.db")
        )

    @property
    def embedded_redis_dir(self) -> Path:
        """Where ``filmstrip dev``'s private redis-server keeps its files."""
        return self.data_path / "redis"

    @property
    def file_umask(self) -> int:
        return int(self.files.umask, 8)


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


G = TypeVar("G", bound=msgspec.Struct)


def variables(group: type[msgspec.Struct]) -> dict[str, msgspec.structs.FieldInfo]:
    """Each variable of ``group`` (``FILMSTRIP_…``) → its field."""
    return {_env_name(f.encode_name): f for f in msgspec.structs.fields(group)}


def load_group(group: type[G], env: Mapping[str, str]) -> G:
    """The ``group`` its variables in ``env`` describe."""
    values: dict[str, Any] = {}
    for name, field in variables(group).items():
        raw = env.get(name)
        if raw is None:
            continue
        try:
            values[field.name] = msgspec.convert(_coerce(raw, field.type), field.type, strict=False)
        except (msgspec.ValidationError, ValueError) as exc:
            raise SettingsError(f"{name}={raw!r} is not valid: {exc}") from None
    return group(**values)


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """:class:`Settings` from ``FILMSTRIP_*`` (and the PaaS ``PORT``, ``DATABASE_URL`` and
    ``REDIS_URL``), each group from its own; :class:`SettingsError` names a bad variable."""
    env = os.environ if environ is None else environ
    ours = {name: value for name, value in env.items() if name.startswith(PREFIX)}
    if _env_name("database_url") in ours and _env_name("db_path") in ours:
        raise SettingsError(
            f"{_env_name('database_url')} and {_env_name('db_path')} are both set: keep "
            f"{_env_name('database_url')} (sqlite:///path or postgresql://…)"
        )
    # A PaaS hands us DATABASE_URL and REDIS_URL; our own variables win over them. Which
    # variable each URL came from, for the messages of _check.
    sources = {"database_url": _env_name("database_url"), "redis_url": _env_name("redis_url")}
    for paas, name in (("DATABASE_URL", "database_url"), ("REDIS_URL", "redis_url")):
        if env.get(paas) and not ours.keys() & {_env_name(name), _env_name("db_path")}:
            ours[_env_name(name)], sources[name] = env[paas], paas
    # A PaaS hands us PORT for the web role; it wins over our own setting and must be
    # reachable from outside the container.
    if env.get("PORT"):
        try:
            msgspec.convert(env["PORT"], Port, strict=False)
        except msgspec.ValidationError as exc:
            raise SettingsError(f"PORT={env['PORT']!r} is not valid: {exc}") from None
        ours[_env_name("api_port")] = env["PORT"]
        ours.setdefault(_env_name("api_host"), "0.0.0.0")
    settings = Settings(
        **{f.name: load_group(f.type, ours) for f in msgspec.structs.fields(Settings)}
    )
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
    if not (s.redis.url.startswith(("redis://", "rediss://", "unix://"))):
        raise SettingsError(
            f"{sources['redis_url']}={s.redis.url!r} must be a redis://, rediss:// or unix:// URL"
        )
    if s.catalog.database_url and database_backend(s.catalog.database_url) is None:
        raise SettingsError(
            f"{sources['database_url']}={redacted_url(s.catalog.database_url)!r} must be a "
            "sqlite:///path (sqlite:////path when absolute) or postgresql:// URL"
        )
    try:
        cluster = s.redis.cluster_mode
    except ValueError:
        raise SettingsError(
            f"{_env_name('redis_cluster')}={s.redis.cluster!r} must be auto, true or false"
        ) from None
    if cluster and s.redis.url.startswith("unix://"):
        raise SettingsError(
            f"{_env_name('redis_url')}: a Redis Cluster is reached over redis:// or rediss://"
        )
    try:
        keys.queue_tag(s.queue.name)
    except ValueError as exc:
        raise SettingsError(f"{_env_name('queue_name')}: {exc}") from None
    for name in ("thumbnail_format", "preview_format"):
        if getattr(s.pipeline, name) not in ("webp", "jpeg", "avif", "png"):
            raise SettingsError(f"{_env_name(name)} must be one of webp, jpeg, avif, png")
    if s.jobs.default_pipeline not in PIPELINE_NAMES:
        raise SettingsError(
            f"{_env_name('default_pipeline')}={s.jobs.default_pipeline!r} is not a pipeline: "
            f"use one of {', '.join(PIPELINE_NAMES)}"
        )
    if not re.fullmatch(r"0?[0-7]{3}", s.files.umask):
        raise SettingsError(
            f"{_env_name('umask')}={s.files.umask!r} must be three octal digits, e.g. 077"
        )
    for origin in s.api.cors_origin_list:
        if origin != "*" and not _ORIGIN.fullmatch(origin):
            raise SettingsError(
                f"{_env_name('cors_origins')}: {origin!r} is not an origin: give "
                "scheme://host[:port] (no path), comma-separated, or * for any"
            )
    if s.logs.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise SettingsError(f"{_env_name('log_level')} must be DEBUG, INFO, WARNING or ERROR")
