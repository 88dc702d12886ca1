"""The schema comes from the migrations; they must agree with the ORM models."""

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from app.db.base import Base
from app.db.migrations import current_revision, head_revision


def test_migrations_match_models(database_url: str) -> None:
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            diff = compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()
    assert diff == [], f"models and migrations disagree: {diff}"


def test_database_is_at_head(database_url: str) -> None:
    engine = sa.create_engine(database_url)
    try:
        assert current_revision(engine) == head_revision()
        assert head_revision() is not None
    finally:
        engine.dispose()


def test_sqlite_connections_are_configured(tmp_path: object) -> None:
    from app.db.session import create_db_engine

    engine = create_db_engine(f"sqlite:///{tmp_path}/pragmas.db", busy_timeout_ms=1234)
    try:
        with engine.connect() as connection:
            pragma = connection.exec_driver_sql
            assert pragma("PRAGMA journal_mode").scalar() == "wal"
            assert pragma("PRAGMA foreign_keys").scalar() == 1
            assert pragma("PRAGMA busy_timeout").scalar() == 1234
            assert pragma("PRAGMA secure_delete").scalar() == 1
    finally:
        engine.dispose()
