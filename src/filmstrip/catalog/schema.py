"""The catalog schema, in SQL that SQLite and PostgreSQL both accept.

Timestamps are ISO-8601 UTC strings (sortable as text); JSON columns are TEXT.
"""

from __future__ import annotations

SCHEMA_VERSION = 1

# Columns added after a table was first released: (table, column, SQL type). A catalog
# created before them gets them (NULL in existing rows) after TABLES, before INDEXES.
ADDED_COLUMNS: tuple[tuple[str, str, str], ...] = (
    # The deferred stages (JSON list) a completed photo still awaits; NULL when none.
    ("photos", "follow_up", "TEXT"),
    # The bytes of the client's originals (its photos' ``bytes``), kept by the statements
    # that add and delete photo rows, so a quota check reads one row, not every photo.
    # NULL until counted: BACKFILLS counts it for clients from before the column.
    ("clients", "stored_bytes", "BIGINT"),
)

# Run after ADDED_COLUMNS on every start; each touches only rows not yet filled in.
BACKFILLS: tuple[str, ...] = (
    "UPDATE clients SET stored_bytes = (SELECT COALESCE(SUM(bytes), 0) FROM photos "
    "WHERE photos.client_id = clients.id) WHERE stored_bytes IS NULL",
)

TABLES: tuple[str, ...] = (
    """CREATE TABLE IF NOT EXISTS clients (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        is_admin INTEGER NOT NULL DEFAULT 0,
        created_at TEXT NOT NULL,
        stored_bytes BIGINT
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
        updated_at TEXT NOT NULL,
        follow_up TEXT
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
)

INDEXES: tuple[str, ...] = (
    "CREATE INDEX IF NOT EXISTS photos_client_uploaded ON photos (client_id, uploaded_at, id)",
    "CREATE INDEX IF NOT EXISTS photos_client_taken ON photos (client_id, taken_at, id)",
    "CREATE INDEX IF NOT EXISTS photos_client_sha ON photos (client_id, sha256)",
    "CREATE INDEX IF NOT EXISTS photos_session ON photos (session_id)",
    "CREATE INDEX IF NOT EXISTS photos_status ON photos (status, updated_at)",
    # Only photos still owed a follow-up job's results are in it, so the reconciler's
    # search for lost follow-ups reads those rows, not every completed photo.
    "CREATE INDEX IF NOT EXISTS photos_follow_up ON photos (status, updated_at) "
    "WHERE follow_up IS NOT NULL",
)
