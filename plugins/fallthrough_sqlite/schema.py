"""The tables, as SQLAlchemy Core metadata, and the full-text index DDL.

One file holds every store of the backend: batches and their records, and
the documents of every collection. :func:`create_schema` makes it exist and
is safe to run again, and from two processes at once, because the caller
runs it inside one ``BEGIN IMMEDIATE`` transaction: the second process waits
for the first to commit, then finds every table in place.
"""

from __future__ import annotations

from sqlalchemy import (
    Column,
    Connection,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Table,
    Text,
    UniqueConstraint,
    column,
    insert,
    select,
    table,
    update,
)

from fallthrough.errors import FallthroughError
from fallthrough.types import Status

SCHEMA_VERSION = 7
"""Bumped whenever a release changes the tables below (or any DDL here): a file at this version is
opened without the write lock and without running the DDL (:func:`schema_is_current`).

* 1: the first release.
* 2: documents gained ``version`` and ``tombstone`` (issue 9); a version 1
  file is migrated in place by :func:`create_schema`.
* 3: the ``document_datetimes`` index table and its triggers (issue 14); a
  file of version 2 or less holds no datetimes, and gets the table, empty.
* 4: records gained ``lease_owner`` and ``lease_us`` (claims, issue 10), NULL
  for every record stored before, and batches an index on
  ``(created_us, batch_id)`` for listing them newest first.
* 5: the ``record_counts`` table and its triggers (issue 12): progress reads
  four rows instead of counting the batch. A file of version 4 or less gets
  the table filled from its records by :func:`create_schema`.
* 6: the ``collection_drops`` table (issue 11), created empty by
  :func:`create_schema` in an older file: nothing was ever dropped there.
  An older release must not open a version 6 file: it would let an older
  upsert bring a dropped document back.
* 7: no ``records_counts_insert`` trigger (issue 12): a trigger run per
  inserted row cost 40–70 % of SQLite's part of a create, so the hooks that
  insert records add their counts themselves, one UPDATE per statement, in
  the same transaction (:mod:`.records`). :func:`create_schema` drops the
  trigger from an older file; its counts, kept by the trigger until then,
  are right as they are. An older release must not open a version 7 file:
  its inserts would go uncounted. Nor may one that opened it earlier go on
  writing: from this version on, a process checks at every write that no
  newer release migrated the file meanwhile (``Database._check_schema_is_ours``),
  but releases before it do not, so stop them before upgrading.
"""

FTS_TOKENIZER = "unicode61 remove_diacritics 0"
"""The FTS5 tokenizer of the text index.

The index holds the core's tokens (:func:`fallthrough.text.tokenize`)
joined by spaces, so the tokenizer only has to split on those spaces; it
also folds case, which changes nothing in tokens the core already
casefolded. Diacritics are kept: the core keeps them, and "е" and "ё" are
different tokens.
"""

metadata = MetaData()

schema_version = Table(
    "schema_version",
    metadata,
    Column("version", Integer, nullable=False),
)

batches = Table(
    "batches",
    metadata,
    Column("batch_id", Text, primary_key=True),  # str(uuid)
    Column("metadata", Text, nullable=False),  # JSON object, written once
    Column("created_us", Integer, nullable=False),  # microseconds since the epoch
    # Listing batches newest first, a keyset on (created_us, batch_id) descending.
    Index("batches_by_created", "created_us", "batch_id"),
)

records = Table(
    "records",
    metadata,
    Column("batch_id", Text, primary_key=True),
    Column("key", Text, primary_key=True),
    Column("seq", Integer, nullable=False),
    Column("status", Text, nullable=False),
    # Status.rank, stored beside the status so that the merge order is a
    # plain row value: (attempt, rank, updated_us, tiebreak).
    Column("rank", Integer, nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("result", Text, nullable=True),  # JSON text; NULL is "no result"
    Column("error", Text, nullable=True),
    Column("updated_us", Integer, nullable=False),
    Column("tiebreak", Integer, nullable=False),
    # The claim's holder and the end of its lease (microseconds); both NULL
    # unless the record is processing under a claim. Added in version 4.
    Column("lease_owner", Text, nullable=True),
    Column("lease_us", Integer, nullable=True),
    # Keyset pagination in (seq, key) order, and its status-filtered twin,
    # which also serves the GROUP BY status of progress as a covering index.
    Index("records_by_seq", "batch_id", "seq", "key"),
    Index("records_by_status", "batch_id", "status", "seq", "key"),
    sqlite_with_rowid=False,
)

record_counts = Table(
    "record_counts",
    metadata,
    # One row per batch and status, all four from the batch's creation on:
    # how many of the batch's records have that status. Triggers
    # (COUNTS_DDL) keep it, in the same transaction as every write of
    # batches and records; nothing else writes it.
    Column("batch_id", Text, primary_key=True),
    Column("status", Text, primary_key=True),
    Column("n", Integer, nullable=False),
    sqlite_with_rowid=False,
)

collections = Table(
    "collections",
    metadata,
    Column("name", Text, primary_key=True),
    Column("dimension", Integer, nullable=True),  # fixed by the first vector stored
    # Bumped by every write to the collection, in the same transaction; a
    # cached vector matrix is valid while the generation it was read at is
    # current, even when another process wrote to the file.
    Column("generation", Integer, nullable=False),
)

collection_drops = Table(
    "collection_drops",
    metadata,
    # The version of a collection's latest drop: every document write at or
    # below it is refused (fallthrough_drop_collection). Kept for good.
    Column("name", Text, primary_key=True),
    Column("version", Integer, nullable=False),
)

documents = Table(
    "documents",
    metadata,
    # An INTEGER PRIMARY KEY is the rowid, which the FTS index points at.
    Column("row_id", Integer, primary_key=True),
    Column("collection", Text, nullable=False),
    Column("id", Text, nullable=False),
    Column("text", Text, nullable=False),
    Column("tokens", Text, nullable=False),  # " ".join(fallthrough.text.tokenize(text))
    Column("vector", LargeBinary, nullable=True),  # little-endian float32
    Column("metadata", Text, nullable=False),  # flat JSON object
    # The stamp of the write that left the entry (microseconds, int64).
    # Rows written before schema version 2 have version 0: older than any
    # stamped write, so every new write of the id replaces them.
    Column("version", Integer, nullable=False, server_default="0"),
    # 1 for a tombstone: the entry a delete leaves. Its text, tokens and
    # metadata are empty ('', '', '{}') and its vector NULL, so it is in no
    # index a search reads; every read of live documents also says
    # tombstone = 0. One row per (collection, id), live or not, is what lets
    # a versioned write be one INSERT ... ON CONFLICT DO UPDATE ... WHERE.
    Column("tombstone", Integer, nullable=False, server_default="0"),
    # Also the keyset of scan_documents and the DISTINCT of list_collections.
    UniqueConstraint("collection", "id", name="documents_by_id"),
)

document_datetimes = Table(
    "document_datetimes",
    metadata,
    # One row per datetime in a live document's metadata: a datetime value,
    # or each datetime element of a list value, under the field's name.
    # Triggers on documents (DATETIME_DDL) keep it in step, in the same
    # transaction as the row; nothing else writes it.
    Column("row_id", Integer, nullable=False),  # documents.row_id
    Column("collection", Text, nullable=False),
    Column("field", Text, nullable=False),
    Column("micros", Integer, nullable=False),  # microseconds since the epoch: time order
    # Serves datetime filters: a range (or an equality) on one field of one
    # collection is a range scan of this index, covering the row_ids.
    Index("document_datetimes_by_value", "collection", "field", "micros", "row_id"),
    # For the triggers, which replace a row's entries.
    Index("document_datetimes_by_row", "row_id"),
)
"""The datetime index: the ``(collection, field, micros)`` of every datetime in live documents' metadata.

A JSON1 expression index cannot serve ranges here (one would be needed per
field name, and a list value holds several datetimes), so the datetimes are
copied out by triggers into this table, whose index serves every datetime
comparison of :mod:`.filters`.
"""

documents_fts = table("documents_fts", column("rowid", Integer))
"""The FTS5 table, for queries; it is created by :data:`FTS_DDL`, not by the metadata."""

# An external-content FTS5 table over documents.tokens, kept in step by
# triggers so that the index changes in the same transaction as the rows.
# Upserts use INSERT ... ON CONFLICT DO UPDATE, never INSERT OR REPLACE:
# the delete half of a REPLACE does not fire delete triggers.
FTS_DDL = (
    f"""CREATE VIRTUAL TABLE IF NOT EXISTS documents_fts USING fts5(
        tokens, content='documents', content_rowid='row_id', tokenize='{FTS_TOKENIZER}'
    )""",
    """CREATE TRIGGER IF NOT EXISTS documents_fts_insert AFTER INSERT ON documents BEGIN
        INSERT INTO documents_fts(rowid, tokens) VALUES (new.row_id, new.tokens);
    END""",
    """CREATE TRIGGER IF NOT EXISTS documents_fts_delete AFTER DELETE ON documents BEGIN
        INSERT INTO documents_fts(documents_fts, rowid, tokens) VALUES ('delete', old.row_id, old.tokens);
    END""",
    """CREATE TRIGGER IF NOT EXISTS documents_fts_update AFTER UPDATE OF tokens ON documents BEGIN
        INSERT INTO documents_fts(documents_fts, rowid, tokens) VALUES ('delete', old.row_id, old.tokens);
        INSERT INTO documents_fts(rowid, tokens) VALUES (new.row_id, new.tokens);
    END""",
)


# The datetimes of a row's top-level fields, as (field, micros) rows: a value
# that is an encoded datetime (an object whose "$dt" member is an integer, see
# fallthrough.kit.dump_metadata), and each such element of a list value. A
# user's nested object is an object too, but never has a "$dt" key (the core
# refuses keys starting with '$'), so it is left out. Datetimes deeper down
# (under a dotted path) are not in this table: filters find them by walking
# the JSON (see filters.py). ROW is "new" or "old".
def _datetimes_of(row: str) -> str:
    return f"""
        SELECT {row}.row_id, {row}.collection, f.key, json_extract(f.value, '$."$dt"')
        FROM json_each({row}.metadata) AS f
        WHERE f.type = 'object' AND json_type(f.value, '$."$dt"') = 'integer'
        UNION ALL
        SELECT {row}.row_id, {row}.collection, f.key, json_extract(e.value, '$."$dt"')
        FROM json_each({row}.metadata) AS f, json_each(f.value) AS e
        WHERE f.type = 'array' AND e.type = 'object' AND json_type(e.value, '$."$dt"') = 'integer'"""


_HOLDS_DATETIMES = "instr({row}.metadata, '{{\"$dt\":') > 0"

RETIRED_TRIGGERS = ("documents_datetimes_insert", "documents_datetimes_update", "documents_datetimes_delete")
"""The datetime triggers of files written before nested metadata: they took every top-level object for a
datetime, and a user's object (micros NULL) would fail their insert. :func:`create_schema` drops them; the
``_v2`` triggers below replace them, with the same rows for every document those could hold."""

DATETIME_DDL = (
    f"""CREATE TRIGGER IF NOT EXISTS documents_datetimes_insert_v2 AFTER INSERT ON documents
    WHEN {_HOLDS_DATETIMES.format(row="new")} BEGIN
        INSERT INTO document_datetimes(row_id, collection, field, micros) {_datetimes_of("new")};
    END""",
    f"""CREATE TRIGGER IF NOT EXISTS documents_datetimes_update_v2 AFTER UPDATE OF metadata ON documents
    WHEN {_HOLDS_DATETIMES.format(row="old")} OR {_HOLDS_DATETIMES.format(row="new")} BEGIN
        DELETE FROM document_datetimes WHERE row_id = old.row_id;
        INSERT INTO document_datetimes(row_id, collection, field, micros) {_datetimes_of("new")};
    END""",
    f"""CREATE TRIGGER IF NOT EXISTS documents_datetimes_delete_v2 AFTER DELETE ON documents
    WHEN {_HOLDS_DATETIMES.format(row="old")} BEGIN
        DELETE FROM document_datetimes WHERE row_id = old.row_id;
    END""",
)
"""Triggers that keep :data:`document_datetimes` equal to the datetimes of the documents' top-level fields.

Metadata without a datetime (a tombstone's ``{}`` among them) skips them
with one ``instr``: the encoded form's opening ``{"$dt":`` appears in the
stored text only where a datetime is (see :func:`fallthrough.kit.dump_metadata`).
"""


_STATUS_ROWS = ", ".join(f"(new.batch_id, '{status.value}', 0)" for status in Status)

COUNTS_DDL = (
    # A batch gets its four counts when its row is inserted (a repair's
    # upsert of an existing batch takes the UPDATE branch: the counts stay).
    f"""CREATE TRIGGER IF NOT EXISTS batches_counts_insert AFTER INSERT ON batches BEGIN
        INSERT OR IGNORE INTO record_counts(batch_id, status, n) VALUES {_STATUS_ROWS};
    END""",
    """CREATE TRIGGER IF NOT EXISTS batches_counts_delete AFTER DELETE ON batches BEGIN
        DELETE FROM record_counts WHERE batch_id = old.batch_id;
    END""",
    # Records are only ever written to a batch whose row exists (every hook
    # that writes them checks or writes the batch first), so the count rows
    # exist and a plain UPDATE, one primary-key seek, keeps them. Inserts
    # have no trigger (see RETIRED_COUNT_TRIGGERS): each hook that inserts
    # records adds what it inserted itself.
    """CREATE TRIGGER IF NOT EXISTS records_counts_delete AFTER DELETE ON records BEGIN
        UPDATE record_counts SET n = n - 1 WHERE batch_id = old.batch_id AND status = old.status;
    END""",
    """CREATE TRIGGER IF NOT EXISTS records_counts_update AFTER UPDATE OF status ON records
    WHEN old.status <> new.status BEGIN
        UPDATE record_counts SET n = n - 1 WHERE batch_id = old.batch_id AND status = old.status;
        UPDATE record_counts SET n = n + 1 WHERE batch_id = new.batch_id AND status = new.status;
    END""",
)
"""Triggers that, with the inserting hooks, keep :data:`record_counts` equal to ``SELECT status, count(*) … GROUP BY``.

Triggers count every change of a record's status (the merge's UPDATE,
claims, retries, the update half of a repair's upsert) and every delete, in
the same transaction as the rows. Inserts are counted by the hooks that make
them, one ``UPDATE record_counts`` per statement rather than one trigger run
per row: :func:`.records.create_batch` and :func:`.records.add_records` add
the row count of their insert to ``pending``, and :func:`.records.merge_records`
adds, by status, the keys it found absent. Nothing else inserts records.
"""

RETIRED_COUNT_TRIGGERS = ("records_counts_insert",)
"""The per-row insert trigger of schema versions 5 and 6, dropped by :func:`create_schema` (see version 7)."""


class SchemaVersionError(FallthroughError):
    """The file was written by a newer release of this plugin."""


def schema_is_current(conn: Connection) -> bool:
    """Whether the database holds this version's whole schema: then opening it writes nothing.

    Every change to the schema bumps :data:`SCHEMA_VERSION`, so a file at
    that version has every table, index and trigger :func:`create_schema`
    would create. Read in a plain read transaction: no write lock.
    """
    return schema_version_of(conn) == SCHEMA_VERSION


def schema_version_of(conn: Connection) -> int | None:
    """The schema version the file records; None for a file no release has set up yet."""
    exists = conn.exec_driver_sql(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (schema_version.name,)
    ).first()
    if exists is None:
        return None
    found = conn.execute(select(schema_version.c.version)).scalars().all()
    return max(found) if found else None


def create_schema(conn: Connection) -> None:
    """Create whatever is missing and check the schema version.

    Run inside a write transaction (``BEGIN IMMEDIATE``), so that the
    checks and the creation are one step for every other connection.
    """
    metadata.create_all(conn, checkfirst=True)
    for name in (*RETIRED_TRIGGERS, *RETIRED_COUNT_TRIGGERS):
        conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {name}")
    for statement in (*FTS_DDL, *DATETIME_DDL, *COUNTS_DDL):
        conn.exec_driver_sql(statement)
    found = conn.execute(select(schema_version.c.version)).scalars().all()
    if not found:
        conn.execute(insert(schema_version).values(version=SCHEMA_VERSION))
        return
    stored = max(found)
    if stored > SCHEMA_VERSION:
        raise SchemaVersionError(
            f"the database has schema version {stored}; this fallthrough_sqlite knows up to {SCHEMA_VERSION}"
        )
    if stored < 2:
        _migrate_to_2(conn)
    if stored < 4:
        _migrate_to_4(conn)
    if stored < 5:
        _migrate_to_5(conn)
    if stored < SCHEMA_VERSION:
        conn.execute(update(schema_version).values(version=SCHEMA_VERSION))


def _migrate_to_2(conn: Connection) -> None:
    """Give the documents of a version 1 file a version (0) and a tombstone flag (0: live).

    ADD COLUMN with a constant default rewrites nothing: SQLite reads the
    default for rows stored before the column existed. create_all has not
    touched the existing table, so the columns are missing until now.
    """
    present = {row[1] for row in conn.exec_driver_sql("PRAGMA table_info(documents)")}
    for name in ("version", "tombstone"):
        if name not in present:
            conn.exec_driver_sql(f"ALTER TABLE documents ADD COLUMN {name} INTEGER NOT NULL DEFAULT 0")


def _migrate_to_4(conn: Connection) -> None:
    """Give records the lease columns (NULL: no record of an older file is claimed) and batches their index."""
    present = {row[1] for row in conn.exec_driver_sql("PRAGMA table_info(records)")}
    for name, kind in (("lease_owner", "TEXT"), ("lease_us", "INTEGER")):
        if name not in present:
            conn.exec_driver_sql(f"ALTER TABLE records ADD COLUMN {name} {kind}")
    conn.exec_driver_sql("CREATE INDEX IF NOT EXISTS batches_by_created ON batches (created_us, batch_id)")


def _migrate_to_5(conn: Connection) -> None:
    """Fill ``record_counts`` from the records, one count per batch and status.

    The table was created empty by create_all and the triggers by
    create_schema, all in this ``BEGIN IMMEDIATE`` transaction: no write
    happens between the count and the triggers taking over.
    """
    statuses = " UNION ALL ".join(f"SELECT '{status.value}' AS status" for status in Status)
    conn.exec_driver_sql("DELETE FROM record_counts")
    conn.exec_driver_sql(
        f"""INSERT INTO record_counts(batch_id, status, n)
        SELECT b.batch_id, s.status,
               (SELECT count(*) FROM records AS r WHERE r.batch_id = b.batch_id AND r.status = s.status)
        FROM batches AS b CROSS JOIN ({statuses}) AS s"""
    )


__all__ = [
    "COUNTS_DDL",
    "FTS_TOKENIZER",
    "RETIRED_COUNT_TRIGGERS",
    "SCHEMA_VERSION",
    "DATETIME_DDL",
    "SchemaVersionError",
    "batches",
    "collection_drops",
    "collections",
    "create_schema",
    "document_datetimes",
    "documents",
    "documents_fts",
    "metadata",
    "record_counts",
    "records",
    "schema_version",
]
