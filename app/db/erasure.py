"""Making erased rows unreadable in the database files, not only in its tables."""

from sqlalchemy import Engine, event
from sqlalchemy.orm import Session


def erase_freed_pages_after_commit(session: Session) -> None:
    """On SQLite, once the session commits, checkpoint the WAL so the deleted rows are in
    neither the database file nor its -wal file (PostgreSQL: see the README)."""
    engine = session.get_bind()
    if isinstance(engine, Engine) and engine.dialect.name == "sqlite":
        event.listen(session, "after_commit", lambda _s: _truncate_wal(engine), once=True)


def _truncate_wal(engine: Engine) -> None:
    """secure_delete zeroes the freed rows, but in WAL mode the zeroed pages are new frames
    appended to the -wal file: the earlier frames, with the pupils' rows, stay there (and a
    later checkpoint only copies the zeroed pages into the database file). A TRUNCATE
    checkpoint writes the zeroed pages back and empties the WAL, so the erased rows are in
    neither file. It waits for readers (busy timeout), which are short."""
    raw = engine.raw_connection()
    try:
        raw.driver_connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # type: ignore[union-attr]
    finally:
        raw.close()
