"""Engines and sessions, SQLite configured for a concurrent web service.

SQLite: WAL (readers never block the writer), foreign keys on every connection, a busy
timeout, and ``BEGIN IMMEDIATE`` for sessions that will write, so a read-then-write
transaction takes the write lock up front instead of failing with "database is locked"
when it tries to upgrade. This follows SQLAlchemy's documented recipe for pysqlite
transactions (driver autocommit off, BEGIN emitted from the "begin" event).
"""

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry

from app.core.config import Settings

WRITE_OPTION = "gradecast_write"


def create_db_engine(url: str, *, busy_timeout_ms: int = 30_000, **kwargs: Any) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True, **kwargs)

    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": busy_timeout_ms / 1000},
        pool_pre_ping=False,
        **kwargs,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        # Let SQLAlchemy, not the driver, decide when transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
            cursor.execute("PRAGMA synchronous=NORMAL")
            # Erased pupils' rows are overwritten with zeros, not left in free pages.
            cursor.execute("PRAGMA secure_delete=ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        if conn.get_execution_options().get(WRITE_OPTION):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")

    return engine


@dataclass(frozen=True)
class Database:
    """One engine, two kinds of session: readers, and writers whose transaction starts with
    BEGIN IMMEDIATE on SQLite (lazily, at their first statement, so the write lock is not
    held while a request body is still being read or parsed)."""

    engine: Engine
    reads: sessionmaker[Session]
    writes: sessionmaker[Session]

    @classmethod
    def from_engine(cls, engine: Engine) -> "Database":
        writer = engine.execution_options(**{WRITE_OPTION: True})
        return cls(
            engine=engine,
            reads=sessionmaker(engine, expire_on_commit=False),
            writes=sessionmaker(writer, expire_on_commit=False),
        )


def open_database(settings: Settings) -> Database:
    """The service's database as configured: the one way the app, the workers, the CLI and
    the tests connect."""
    return Database.from_engine(
        create_db_engine(
            settings.resolved_database_url, busy_timeout_ms=settings.sqlite_busy_timeout_ms
        )
    )


@contextmanager
def unit_of_work(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session that commits when the block ends normally and rolls back otherwise."""
    with factory() as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def write_session(database: Database) -> AbstractContextManager[Session]:
    """A writer session for work outside requests: commit on success, roll back on error."""
    return unit_of_work(database.writes)
