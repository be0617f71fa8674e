"""The catalog's schema as ordered migrations, in SQL that SQLite and PostgreSQL both accept.

Timestamps are ISO-8601 UTC strings (sortable as text); JSON columns are TEXT.

``schema_version`` records each migration applied. Catalogs made before it existed (up to
release 10e62e0) have none: migrations 1 to 3 check what is there, so they apply to those
catalogs as they stand. Every later migration runs exactly once, in order, in the
transaction that records it; never edit a released one, add the next. ``BACKFILLS`` run
on every start, after the migrations.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from filmstrip.catalog.transaction import Transaction
from filmstrip.errors import LogicError


@dataclass(frozen=True)
class Migration:
    version: int
    summary: str
    apply: Callable[[Transaction], None]


def _tables(tx: Transaction) -> None:
    for statement in (
        """CREATE TABLE IF NOT EXISTS clients (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            is_admin INTEGER NOT NULL DEFAULT 0,
            created_at TEXT NOT NULL
        )""",
        """CREATE TABLE IF NOT EXISTS tokens (
            token_hash TEXT PRIMARY KEY,
            client_id TEXT NOT NULL REFERENCES clients(id),
            created_at TEXT NOT NULL,
            revoked_at TEXT
        )""",
        """CREATE TABLE IF NOT EXISTS upload_sessions (
            id TEXT PRIMARY KEY,
            client_id TEXT NOT NULL,
            created_at TEXT NOT NULL
        )""",
        """CREATE TABLE IF NOT EXISTS photos (
            id TEXT PRIMARY KEY,
            client_id TEXT NOT NULL,
            session_id TEXT,
            blob_key TEXT NOT NULL,
            content_type TEXT NOT NULL,
            bytes BIGINT NOT NULL,
            sha256 TEXT,
            status TEXT NOT NULL,
            job_id TEXT NOT NULL,
            trace_id TEXT NOT NULL,
            uploaded_at TEXT NOT NULL,
            taken_at TEXT,
            processed_at TEXT,
            processing_metadata TEXT,
            derivatives TEXT,
            processing_error TEXT,
            error_category TEXT,
            updated_at TEXT NOT NULL
        )""",
        # The outbox: written in the same transaction as the photo row; a relay moves each
        # entry to the queue and deletes it, so an accepted upload always gets its job.
        """CREATE TABLE IF NOT EXISTS outbox (
            job_id TEXT PRIMARY KEY,
            photo_id TEXT NOT NULL,
            payload TEXT NOT NULL,
            priority INTEGER NOT NULL,
            created_at TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0
        )""",
        "CREATE INDEX IF NOT EXISTS photos_client_uploaded ON photos (client_id, uploaded_at, id)",
        "CREATE INDEX IF NOT EXISTS photos_client_taken ON photos (client_id, taken_at, id)",
        "CREATE INDEX IF NOT EXISTS photos_client_sha ON photos (client_id, sha256)",
        "CREATE INDEX IF NOT EXISTS photos_session ON photos (session_id)",
        "CREATE INDEX IF NOT EXISTS photos_status ON photos (status, updated_at)",
    ):
        tx.execute(statement)


def _follow_up(tx: Transaction) -> None:
    # The deferred stages (JSON list) a completed photo still awaits; NULL when none.
    if "follow_up" not in tx.columns("photos"):
        tx.execute("ALTER TABLE photos ADD COLUMN follow_up TEXT")
    # Only photos still owed a follow-up job's results are in it, so the reconciler's
    # search for lost follow-ups reads those rows, not every completed photo.
    tx.execute(
        "CREATE INDEX IF NOT EXISTS photos_follow_up ON photos (status, updated_at) "
        "WHERE follow_up IS NOT NULL"
    )


def _stored_bytes(tx: Transaction) -> None:
    # The bytes of the client's originals (its photos' ``bytes``), kept by the statements
    # that add and delete photo rows, so a quota check reads one row, not every photo.
    # NULL until counted: BACKFILLS counts it for clients from before the column.
    if "stored_bytes" not in tx.columns("clients"):
        tx.execute("ALTER TABLE clients ADD COLUMN stored_bytes BIGINT")


def _service_secrets(tx: Transaction) -> None:
    # Keys every process of the service shares (the HMAC key of signed URLs), made once
    # by whichever process starts first: the catalog is the one store all hosts share.
    tx.execute(
        """CREATE TABLE IF NOT EXISTS service_secrets (
            name TEXT PRIMARY KEY,
            value TEXT NOT NULL,
            created_at TEXT NOT NULL
        )"""
    )


def _tus_uploads(tx: Transaction) -> None:
    # Partial tus uploads whose bytes are in the blob store (filmstrip/catalog/tus.py), so
    # a PATCH may reach any api process on any host. Transient: a row lives until its
    # upload expires. Times by the database's clock; ``parts`` and ``tail`` are JSON;
    # ``head`` is hex.
    tx.execute(
        """CREATE TABLE IF NOT EXISTS tus_uploads (
            id TEXT PRIMARY KEY,
            client_id TEXT NOT NULL,
            length BIGINT NOT NULL,
            upload_offset BIGINT NOT NULL,
            metadata TEXT NOT NULL,
            content_type TEXT,
            head TEXT,
            photo_id TEXT,
            duplicate INTEGER NOT NULL DEFAULT 0,
            created_at TEXT NOT NULL,
            expires_at TEXT NOT NULL,
            part_size BIGINT NOT NULL,
            multipart_id TEXT,
            parts TEXT,
            next_part INTEGER NOT NULL DEFAULT 1,
            tail TEXT,
            data_key TEXT,
            lease_owner TEXT,
            lease_until TEXT
        )"""
    )
    # A creation counts the client's open uploads; the sweeper looks for expired ones.
    tx.execute(
        "CREATE INDEX IF NOT EXISTS tus_uploads_client ON tus_uploads (client_id, expires_at)"
    )
    tx.execute("CREATE INDEX IF NOT EXISTS tus_uploads_expiry ON tus_uploads (expires_at)")


def _token_last_used(tx: Transaction) -> None:
    # When the token last authenticated a request, for ``filmstrip token list``. Written at
    # most about once a minute per token (filmstrip/auth/token_use.py and a guarded
    # UPDATE), never on every request.
    if "last_used_at" not in tx.columns("tokens"):
        tx.execute("ALTER TABLE tokens ADD COLUMN last_used_at TEXT")


def _error_code(tx: Transaction) -> None:
    # A failed photo's error is {code, category, message}: the code was only in its event.
    if "error_code" not in tx.columns("photos"):
        tx.execute("ALTER TABLE photos ADD COLUMN error_code TEXT")


def _filenames(tx: Transaction) -> None:
    # The name the client sent with the file (cleaned by the api), and the same case-folded
    # in Python for the listing's filename search: each database's LOWER folds differently
    # beyond ASCII, this folds the same everywhere. NULL for photos sent without a name.
    for column in ("filename", "filename_key"):
        if column not in tx.columns("photos"):
            tx.execute(f"ALTER TABLE photos ADD COLUMN {column} TEXT")


def _upload_choices(tx: Transaction) -> None:
    # The pipeline and priority the upload chose, so every job made for the photo later
    # (a retry, a lost job given back, a remake) runs as the upload asked. NULL: the
    # settings' defaults (photos from before the columns).
    for column, kind in (("pipeline", "TEXT"), ("priority", "INTEGER")):
        if column not in tx.columns("photos"):
            tx.execute(f"ALTER TABLE photos ADD COLUMN {column} {kind}")


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "clients, tokens, sessions, photos, outbox", _tables),
    Migration(2, "photos.follow_up: the deferred stages a completed photo awaits", _follow_up),
    Migration(3, "clients.stored_bytes: the bytes of the client's originals", _stored_bytes),
    Migration(4, "service_secrets: keys all processes share (URL signing)", _service_secrets),
    Migration(5, "tus_uploads: partial uploads whose bytes are in the blob store", _tus_uploads),
    Migration(6, "tokens.last_used_at: when each token was last used", _token_last_used),
    Migration(7, "photos.error_code: the machine-readable code of a photo's failure", _error_code),
    Migration(8, "photos.filename: the name the file was sent with", _filenames),
    Migration(9, "photos.pipeline, photos.priority: what the upload chose", _upload_choices),
)

# Each touches only rows not yet filled in: those of catalogs from before the column, and
# clients an older release, still running beside this one, adds without it.
BACKFILLS: tuple[str, ...] = (
    "UPDATE clients SET stored_bytes = (SELECT COALESCE(SUM(bytes), 0) FROM photos "
    "WHERE photos.client_id = clients.id) WHERE stored_bytes IS NULL",
)

LATEST = MIGRATIONS[-1].version

# The migrations' own record: which were applied when, on this database.
VERSION_TABLE = "schema_version"


def schema_version(tx: Transaction) -> int:
    """The catalog's schema version: 0 for an empty database, and for a catalog from
    before versions (migrations 1 to 3 check what is there)."""
    if VERSION_TABLE not in tx.tables():
        return 0
    rows = tx.fetchall(f"SELECT MAX(version) FROM {VERSION_TABLE}")
    return int(rows[0][0] or 0)


def migrate(tx: Transaction) -> int:
    """Apply the migrations ``tx``'s catalog lacks, in order; return its version. The caller
    holds the schema lock, so concurrent starts apply each migration once."""
    tx.execute(
        f"CREATE TABLE IF NOT EXISTS {VERSION_TABLE} ("
        "version INTEGER PRIMARY KEY, summary TEXT NOT NULL, applied_at TEXT NOT NULL)"
    )
    current = schema_version(tx)
    if current > LATEST:
        raise LogicError(
            f"the catalog's schema is version {current}, newer than this release knows "
            f"({LATEST}): run a release at least as new as the one that upgraded it",
            code="catalog_too_new",
        )
    for migration in MIGRATIONS:
        if migration.version > current:
            migration.apply(tx)
            tx.execute(
                f"INSERT INTO {VERSION_TABLE} (version, summary, applied_at) VALUES (?, ?, ?)",
                (migration.version, migration.summary, tx.now()),
            )
    for statement in BACKFILLS:
        tx.execute(statement)
    return LATEST
