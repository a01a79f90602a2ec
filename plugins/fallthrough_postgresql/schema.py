"""The tables, their creation on first use, and pgvector detection.

:func:`open_schema` runs when the backend opens. When the schema-version
table already says :data:`SCHEMA_VERSION`, it only looks; otherwise it
creates what is missing, and migrates an older schema in place, inside one
transaction that first takes a transaction-scoped advisory lock, so two
processes opening an empty (or older) database at once run the DDL one
after the other, and the second finds everything in place. Every
statement is ``IF NOT EXISTS`` / ``OR REPLACE`` / ``ADD COLUMN IF NOT
EXISTS`` as a second line of defence.

Status counts are kept by statement-level triggers with transition tables
(PostgreSQL 10+; ``CREATE OR REPLACE TRIGGER`` needs 14+): every INSERT,
UPDATE and DELETE of ``processing_results``, whoever runs it, adds its net
change per (batch, status) to ``fallthrough_status_counts`` in the same
transaction. The counts are striped by the server process id modulo
:data:`COUNT_STRIPES`, so concurrent writers to one batch mostly update
different rows; progress sums the stripes.
"""

from __future__ import annotations

import hashlib

import attrs
from sqlalchemy import Connection, text

from fallthrough.errors import FallthroughError

from .connection import driver_connection

SCHEMA_VERSION = 6
"""Bumped whenever a release changes the DDL below; later versions migrate from the recorded one.

1. batches, records, documents.
2. document versions and tombstones (``fallthrough_documents.version``,
   nullable content columns); a version 1 database is migrated in place.
3. claims (issue 10): ``processing_results.lease_owner`` and ``lease_us``
   (NULL for every record stored before), the partial index of claimable
   records, and the batches' ``(created_us, batch_id)`` index for listing
   them newest first; an older database is migrated in place.
4. ``fallthrough_records_page()``, the function that reads a page of
   records down the ``(batch_id, seq, key)`` index whatever the statistics
   say (issue 12); created in place in an older database.
5. ``fallthrough_collections.dropped``: the version of the collection's
   latest drop (issue 11), NULL where it was never dropped; added in place.
6. ``fallthrough_documents.embedding_vector`` (where pgvector is installed):
   the stored vector as pgvector's ``vector``, generated from ``embedding``
   by the statement that writes it, and the collections' HNSW indexes on it
   instead of on ``embedding::vector(d)``; added, filled and the indexes
   rebuilt in place (see :func:`ensure_vector_column`). An older release
   must not open such a database: the HNSW indexes it would build for new
   collections are on the old expression, which no search reads.
"""

HNSW_MAX_DIMENSION = 2000
"""pgvector's limit for an HNSW index on ``vector``; a collection of longer vectors is searched exactly."""

VECTOR_MAX_DIMENSION = 16_000
"""pgvector's limit for the ``vector`` type; longer vectors (the core allows 65,536) are compared as ``real[]``."""

VECTOR_COLUMN = "embedding_vector"
"""The stored vector as pgvector's ``vector`` (schema version 6), NULL past :data:`VECTOR_MAX_DIMENSION`.

A filtered search that the planner serves by the metadata index scans the
matching rows exactly; casting each row's ``real[]`` to ``vector`` was two
thirds of that scan. The column is generated (STORED) from ``embedding``,
so every write of ``embedding``, by whatever statement, writes it too and
it can never be stale. ``embedding real[]`` stays what is read back, and
what a server without pgvector stores alone.
"""

COUNT_STRIPES = 16

# Any fixed 64-bit number; it names this plugin's DDL lock among advisory locks.
SCHEMA_LOCK_ID = 0x66616C6C7468_01

DDL: tuple[str, ...] = (
    """CREATE TABLE IF NOT EXISTS fallthrough_schema_version (
        version integer PRIMARY KEY
    )""",
    """CREATE TABLE IF NOT EXISTS fallthrough_batches (
        batch_id uuid PRIMARY KEY,
        metadata json NOT NULL,
        created_us bigint NOT NULL
    )""",
    # Listing batches newest first (schema version 3). Every statement that
    # locks a table comes in the order the writes lock them (batches, then
    # records), so a process that runs this DDL again while another writes
    # cannot deadlock with it.
    "CREATE INDEX IF NOT EXISTS fallthrough_batches_by_created ON fallthrough_batches (created_us, batch_id)",
    # The records, in the table of the original application. The merge
    # order is (attempt, rank, updated_us, tiebreak); rank mirrors status.
    # Keys and ids compare in code point order ("C"), as Python's str does.
    # No index covers a column an update changes (status included), and
    # pages keep free room (fillfactor), so status updates are HOT updates:
    # no index entry is written for them.
    """CREATE TABLE IF NOT EXISTS processing_results (
        batch_id uuid NOT NULL,
        key text COLLATE "C" NOT NULL,
        seq bigint NOT NULL,
        status text NOT NULL CHECK (status IN ('pending', 'processing', 'completed', 'failed')),
        rank smallint NOT NULL,
        attempt integer NOT NULL,
        result json,
        error text,
        updated_us bigint NOT NULL,
        tiebreak bigint NOT NULL,
        PRIMARY KEY (batch_id, key)
    ) WITH (fillfactor = 85)""",
    # Keyset pagination in (seq, key) order; a listing by status reads it too, and skips other statuses.
    "CREATE INDEX IF NOT EXISTS processing_results_by_seq ON processing_results (batch_id, seq, key)",
    # Schema version 3: the claim's holder and the end of its lease (microseconds),
    # NULL unless the record is processing under a claim; a catalog-only change,
    # made only where the columns are missing (ALTER TABLE would take the
    # table's strongest lock even when there is nothing to add).
    """DO $$ BEGIN
        IF NOT EXISTS (
            SELECT FROM information_schema.columns
            WHERE table_schema = current_schema() AND table_name = 'processing_results' AND column_name = 'lease_us'
        ) THEN
            ALTER TABLE processing_results
                ADD COLUMN IF NOT EXISTS lease_owner text, ADD COLUMN IF NOT EXISTS lease_us bigint;
        END IF;
    END $$""",
    # What a claim reads: the records it may take, in (seq, key) order. Its
    # predicate names status, so a status update writes this index (it is no
    # HOT update any more); without it a claim would scan the batch's
    # finished records on every call, and a batch of n records would cost
    # n^2 / 2 index reads to process.
    """CREATE INDEX IF NOT EXISTS processing_results_claimable
        ON processing_results (batch_id, seq, key) WHERE status IN ('pending', 'processing')""",
    # Schema version 4: one page of a batch's records in (seq, key) order,
    # read the only way that costs the same wherever the page is: down the
    # (batch_id, seq, key) index, from the last row seen. The planner would
    # pick that by itself, but not while the table's statistics predate the
    # batch (a batch created a moment ago, before autovacuum's ANALYZE):
    # thinking the batch holds a few hundred rows, it chose a bitmap scan of
    # every remaining row and a sort, per page, which made iterating a fresh
    # batch of a million records quadratic (16 s against 3 s for one
    # cursor). The function's SET clauses rule those plans out for its own
    # statements only.
    """CREATE OR REPLACE FUNCTION fallthrough_records_page(
        p_batch uuid, p_status text, p_after_seq bigint, p_after_key text, p_limit integer
    ) RETURNS TABLE (
        o_key text, o_seq bigint, o_status text, o_attempt integer, o_result text, o_error text,
        o_updated_us bigint, o_lease_owner text, o_lease_us bigint
    ) LANGUAGE plpgsql STABLE
    SET enable_bitmapscan = off SET enable_sort = off SET enable_seqscan = off
    AS $$
    BEGIN
        IF p_after_seq IS NULL THEN
            RETURN QUERY SELECT r.key, r.seq, r.status, r.attempt, r.result::text, r.error, r.updated_us,
                    r.lease_owner, r.lease_us
                FROM processing_results r
                WHERE r.batch_id = p_batch AND (p_status IS NULL OR r.status = p_status)
                ORDER BY r.seq, r.key LIMIT p_limit;
        ELSE
            RETURN QUERY SELECT r.key, r.seq, r.status, r.attempt, r.result::text, r.error, r.updated_us,
                    r.lease_owner, r.lease_us
                FROM processing_results r
                WHERE r.batch_id = p_batch AND (r.seq, r.key) > (p_after_seq, p_after_key COLLATE "C")
                  AND (p_status IS NULL OR r.status = p_status)
                ORDER BY r.seq, r.key LIMIT p_limit;
        END IF;
    END $$""",
    """CREATE TABLE IF NOT EXISTS fallthrough_status_counts (
        batch_id uuid NOT NULL,
        status text NOT NULL,
        stripe smallint NOT NULL,
        count bigint NOT NULL,
        PRIMARY KEY (batch_id, status, stripe)
    )""",
    f"""CREATE OR REPLACE FUNCTION fallthrough_count_statuses() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'INSERT' THEN
            INSERT INTO fallthrough_status_counts AS c (batch_id, status, stripe, count)
            SELECT batch_id, status, (pg_backend_pid() % {COUNT_STRIPES})::smallint, count(*)
            FROM new_rows GROUP BY batch_id, status ORDER BY batch_id, status
            ON CONFLICT (batch_id, status, stripe) DO UPDATE SET count = c.count + excluded.count;
        ELSIF TG_OP = 'DELETE' THEN
            INSERT INTO fallthrough_status_counts AS c (batch_id, status, stripe, count)
            SELECT batch_id, status, (pg_backend_pid() % {COUNT_STRIPES})::smallint, -count(*)
            FROM old_rows GROUP BY batch_id, status ORDER BY batch_id, status
            ON CONFLICT (batch_id, status, stripe) DO UPDATE SET count = c.count + excluded.count;
        ELSE
            INSERT INTO fallthrough_status_counts AS c (batch_id, status, stripe, count)
            SELECT batch_id, status, (pg_backend_pid() % {COUNT_STRIPES})::smallint, sum(delta)
            FROM (
                SELECT batch_id, status, 1 AS delta FROM new_rows
                UNION ALL
                SELECT batch_id, status, -1 AS delta FROM old_rows
            ) AS changes
            GROUP BY batch_id, status HAVING sum(delta) <> 0 ORDER BY batch_id, status
            ON CONFLICT (batch_id, status, stripe) DO UPDATE SET count = c.count + excluded.count;
        END IF;
        RETURN NULL;
    END
    $$""",
    """CREATE OR REPLACE TRIGGER processing_results_count_inserts AFTER INSERT ON processing_results
        REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION fallthrough_count_statuses()""",
    """CREATE OR REPLACE TRIGGER processing_results_count_updates AFTER UPDATE ON processing_results
        REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
        FOR EACH STATEMENT EXECUTE FUNCTION fallthrough_count_statuses()""",
    """CREATE OR REPLACE TRIGGER processing_results_count_deletes AFTER DELETE ON processing_results
        REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION fallthrough_count_statuses()""",
    # A collection's vector dimension is fixed by its first vector; its
    # HNSW index (with pgvector) is named here once built.
    """CREATE TABLE IF NOT EXISTS fallthrough_collections (
        name text COLLATE "C" PRIMARY KEY,
        dimension integer,
        vector_index text
    )""",
    # Schema version 5: the version of the collection's latest drop. Every
    # document write at or below it is refused (fallthrough_drop_collection).
    "ALTER TABLE fallthrough_collections ADD COLUMN IF NOT EXISTS dropped bigint",
    # Every id's entry: a live document, or a tombstone (text, tokens,
    # embedding and metadata all NULL) that a delete leaves. version is the
    # core's stamp of the write that left the entry. metadata is kept twice:
    # as written (json, which keeps the text, so 1.0 and 1e300 read back as
    # floats) and as jsonb for filters.
    """CREATE TABLE IF NOT EXISTS fallthrough_documents (
        collection text COLLATE "C" NOT NULL,
        id text COLLATE "C" NOT NULL,
        version bigint NOT NULL DEFAULT 0,
        text text,
        tokens text[] COLLATE "C",
        embedding real[],
        metadata json,
        metadata_jsonb jsonb,
        PRIMARY KEY (collection, id)
    )""",
    # Schema version 1 had no versions and no tombstones: its documents
    # become version 0 (older than any stamped write). Both changes touch
    # the catalog only (no table rewrite); on a new table they do nothing.
    """ALTER TABLE fallthrough_documents
        ADD COLUMN IF NOT EXISTS version bigint NOT NULL DEFAULT 0,
        ALTER COLUMN text DROP NOT NULL,
        ALTER COLUMN tokens DROP NOT NULL,
        ALTER COLUMN metadata DROP NOT NULL,
        ALTER COLUMN metadata_jsonb DROP NOT NULL""",
    "CREATE INDEX IF NOT EXISTS fallthrough_documents_tokens ON fallthrough_documents USING gin (tokens)",
    """CREATE INDEX IF NOT EXISTS fallthrough_documents_metadata
        ON fallthrough_documents USING gin (metadata_jsonb jsonb_path_ops)""",
)


class SchemaVersionError(FallthroughError):
    """The database was set up by a newer release of this plugin."""


class UnsupportedDatabase(FallthroughError):
    """The database cannot hold what fallthrough stores: its encoding is not UTF8."""


@attrs.frozen
class ServerFeatures:
    """What the server offers, learnt at open."""

    server_version: int
    pgvector: str | None  # its version, when the extension is installed in this database

    @property
    def vector_search(self) -> bool:
        return self.pgvector is not None


def open_schema(conn: Connection) -> ServerFeatures:
    """Make sure the schema exists at :data:`SCHEMA_VERSION`, then say what the server offers.

    Run inside a transaction; the DDL, when needed, runs under an advisory lock.
    """
    encoding = conn.exec_driver_sql("SHOW server_encoding").scalar_one()
    if encoding != "UTF8":
        raise UnsupportedDatabase(
            f"the database's encoding is {encoding}; fallthrough needs a UTF8 database (with a UTF-8 locale, "
            "such as C.UTF-8), or it cannot store Cyrillic and other non-ASCII text"
        )
    found = _recorded_version(conn)
    if found is None or found < SCHEMA_VERSION or not _intact(conn):
        conn.execute(text("SELECT pg_advisory_xact_lock(:lock)"), {"lock": SCHEMA_LOCK_ID})
        # Another process may have created or migrated the schema while this one waited.
        found = _recorded_version(conn)
        _check_newer(found)
        # A table dropped by hand under a version that says it exists is made again, empty.
        if found != SCHEMA_VERSION or not _intact(conn):
            _check_records_table(conn)
            counted = _records_counted(conn)
            # The DDL creates what is missing and migrates what is older: each
            # statement is a no-op where its change is already made.
            driver = driver_connection(conn)
            for statement in DDL:
                driver.execute(statement)
            if not counted:
                # Counts kept beside records that are gone (dropped by hand), or records kept without
                # counts or their triggers: counted afresh, the table locked by its new triggers until
                # the commit.
                for statement in _RECOUNT:
                    driver.execute(statement)
            conn.execute(
                text("INSERT INTO fallthrough_schema_version (version) VALUES (:v) ON CONFLICT DO NOTHING"),
                {"v": SCHEMA_VERSION},
            )
        _try_create_pgvector(conn)
    else:
        _check_newer(found)
        _try_create_pgvector(conn)
    ensure_vector_column(conn)
    server_version = int(conn.exec_driver_sql("SHOW server_version_num").scalar_one())
    pgvector = conn.exec_driver_sql("SELECT extversion FROM pg_extension WHERE extname = 'vector'").scalar()
    return ServerFeatures(server_version, pgvector)


RECORD_COLUMNS = frozenset(
    {"batch_id", "key", "seq", "status", "rank", "attempt", "result", "error", "updated_us", "tiebreak"}
)


def _check_records_table(conn: Connection) -> None:
    """A ``processing_results`` already there (``IF NOT EXISTS`` would keep it) must have this plugin's columns."""
    found = set(
        conn.execute(
            text(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_name = 'processing_results' AND table_schema = current_schema()"
            )
        ).scalars()
    )
    missing = sorted(RECORD_COLUMNS - found)
    if found and missing:
        raise UnsupportedDatabase(
            f"a table processing_results already exists in this schema without the columns {', '.join(missing)}; "
            "fallthrough_postgresql cannot use it (migrate it, or point the backend at another database or schema)"
        )


def _check_newer(found: int | None) -> None:
    if found is not None and found > SCHEMA_VERSION:
        raise SchemaVersionError(
            f"the database has fallthrough schema version {found}; this fallthrough_postgresql knows up to "
            f"{SCHEMA_VERSION}"
        )


_TABLES = (
    "fallthrough_schema_version",
    "fallthrough_batches",
    "processing_results",
    "fallthrough_status_counts",
    "fallthrough_collections",
    "fallthrough_documents",
)
_ALL_TABLES_EXIST = " AND ".join(f"to_regclass('{table}') IS NOT NULL" for table in _TABLES)


_COUNT_TRIGGERS = (
    "processing_results_count_inserts",
    "processing_results_count_updates",
    "processing_results_count_deletes",
)
_RECORDS_COUNTED = (
    "to_regclass('fallthrough_status_counts') IS NOT NULL AND (SELECT count(*) FROM pg_trigger "
    "WHERE tgrelid = to_regclass('processing_results') AND tgenabled IN ('O', 'A') AND tgname IN "
    f"({', '.join(repr(name) for name in _COUNT_TRIGGERS)})) = {len(_COUNT_TRIGGERS)}"
)
"""Whether the records are counted: the counts table, and the triggers that keep it, on ``processing_results``
and firing in an ordinary session (``O``, or ``A``: always). One disabled (a bulk load's ``DISABLE TRIGGER``
left so) or firing only for replication (``ENABLE REPLICA``) stops the counts; ``CREATE OR REPLACE`` puts it
back to ``O``."""
_RECOUNT = (
    "DELETE FROM fallthrough_status_counts",
    "INSERT INTO fallthrough_status_counts (batch_id, status, stripe, count) "
    "SELECT batch_id, status, 0, count(*) FROM processing_results GROUP BY batch_id, status",
)


def _records_counted(conn: Connection) -> bool:
    return bool(conn.exec_driver_sql(f"SELECT {_RECORDS_COUNTED}").scalar_one())


def _intact(conn: Connection) -> bool:
    """Every table there, and the records counted: what a recorded schema version promises.

    A table dropped by hand, or the original application's own
    ``processing_results`` made again in its place, breaks that promise.
    """
    return bool(conn.exec_driver_sql(f"SELECT {_ALL_TABLES_EXIST} AND {_RECORDS_COUNTED}").scalar_one())


def _recorded_version(conn: Connection) -> int | None:
    exists = conn.exec_driver_sql("SELECT to_regclass('fallthrough_schema_version') IS NOT NULL").scalar_one()
    if not exists:
        return None
    version = conn.exec_driver_sql("SELECT max(version) FROM fallthrough_schema_version").scalar()
    return None if version is None else int(version)


VECTOR_COLUMN_DDL = (
    f"ALTER TABLE fallthrough_documents ADD COLUMN IF NOT EXISTS {VECTOR_COLUMN} vector "
    f"GENERATED ALWAYS AS (CASE WHEN cardinality(embedding) <= {VECTOR_MAX_DIMENSION} "
    "THEN embedding::vector END) STORED"
)
"""Schema version 6, run by :func:`ensure_vector_column` (only where pgvector is installed)."""


def hnsw_index_name(collection: str) -> str:
    """The HNSW index of a collection: a digest of its name, which may be 63 characters and hold '-'."""
    return "fallthrough_hnsw_" + hashlib.blake2b(collection.encode(), digest_size=12).hexdigest()


def literal(value: str) -> str:
    """A SQL string literal; collection names are ASCII letters, digits, '_' and '-' only."""
    return "'" + value.replace("'", "''") + "'"


def vector_expression(dimension: int) -> str:
    """The stored vector as the HNSW index and every distance read it: the vector column at its collection's typmod.

    The typmod (pgvector's recipe for vectors of several dimensions in one
    column) is a length check, not a conversion.
    """
    return f"{VECTOR_COLUMN}::vector({int(dimension)})"


def hnsw_index_ddl(collection: str, dimension: int) -> str:
    """The collection's partial HNSW index, on its own rows only."""
    return (
        f"CREATE INDEX IF NOT EXISTS {hnsw_index_name(collection)} ON fallthrough_documents "
        f"USING hnsw (({vector_expression(dimension)}) vector_cosine_ops) "
        f"WHERE collection = {literal(collection)} AND {VECTOR_COLUMN} IS NOT NULL"
    )


def ensure_vector_column(conn: Connection) -> None:
    """Where pgvector is installed, add :data:`VECTOR_COLUMN` if missing, and rebuild the HNSW indexes on it.

    Runs at every open, not only when the recorded version is older: a
    database set up without pgvector gets the column the first time it is
    opened with the extension installed. Adding a STORED generated column
    rewrites the table (filling the column from ``embedding``) under an
    ACCESS EXCLUSIVE lock; the old indexes on ``embedding::vector(d)`` are
    dropped first (the rewrite would otherwise rebuild them for nothing),
    and every collection that had one gets it again on the new column.
    """
    if not _vector_column_missing(conn):
        return
    conn.execute(text("SELECT pg_advisory_xact_lock(:lock)"), {"lock": SCHEMA_LOCK_ID})
    if not _vector_column_missing(conn):
        return  # another process added it while this one waited
    driver = driver_connection(conn)
    # Bounded work that must finish: a big table's rewrite can outlast statement_timeout.
    driver.execute("SET LOCAL statement_timeout = 0")
    indexed = driver.execute(
        "SELECT name, dimension, vector_index FROM fallthrough_collections WHERE vector_index IS NOT NULL ORDER BY name"
    ).fetchall()
    for _, _, index in indexed:
        driver.execute(f'DROP INDEX IF EXISTS "{index}"')
    driver.execute(VECTOR_COLUMN_DDL)
    for name, dimension, _ in indexed:
        driver.execute(hnsw_index_ddl(name, dimension))
        driver.execute(
            "UPDATE fallthrough_collections SET vector_index = %s WHERE name = %s", (hnsw_index_name(name), name)
        )


def _vector_column_missing(conn: Connection) -> bool:
    """pgvector is installed and the documents have no :data:`VECTOR_COLUMN` (yet)."""
    return bool(
        conn.execute(
            text(
                "SELECT EXISTS (SELECT FROM pg_extension WHERE extname = 'vector') AND NOT EXISTS ("
                "SELECT FROM pg_attribute WHERE attrelid = 'fallthrough_documents'::regclass "
                "AND attname = :column AND NOT attisdropped)"
            ),
            {"column": VECTOR_COLUMN},
        ).scalar_one()
    )


def _try_create_pgvector(conn: Connection) -> None:
    """``CREATE EXTENSION IF NOT EXISTS vector`` where the server has it; a refusal just means no vector search."""
    installed = conn.exec_driver_sql("SELECT 1 FROM pg_extension WHERE extname = 'vector'").scalar()
    if installed:
        return
    available = conn.exec_driver_sql("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'").scalar()
    if not available:
        return
    savepoint = conn.begin_nested()
    try:
        conn.execute(text("SELECT pg_advisory_xact_lock(:lock)"), {"lock": SCHEMA_LOCK_ID})
        conn.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS vector")
    except Exception as error:
        savepoint.rollback()
        if not _is_refusal(error):
            raise
    else:
        savepoint.commit()


def _is_refusal(error: BaseException) -> bool:
    """Insufficient privilege, a read-only server, or the extension's files missing: the server says no."""
    original = getattr(error, "orig", error)
    sqlstate = getattr(original, "sqlstate", None)
    return isinstance(sqlstate, str) and (
        sqlstate in ("42501", "25006") or sqlstate.startswith(("0A", "58", "42", "XX"))
    )


__all__ = [
    "COUNT_STRIPES",
    "DDL",
    "HNSW_MAX_DIMENSION",
    "SCHEMA_VERSION",
    "VECTOR_COLUMN",
    "VECTOR_COLUMN_DDL",
    "VECTOR_MAX_DIMENSION",
    "SchemaVersionError",
    "ServerFeatures",
    "UnsupportedDatabase",
    "ensure_vector_column",
    "hnsw_index_ddl",
    "hnsw_index_name",
    "literal",
    "open_schema",
    "vector_expression",
]
