"""The schema comes from the migrations; they must agree with the ORM models."""

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.orm import Session

from app.db.base import Base
from app.db.migrations import alembic_config, current_revision, head_revision
from app.db.students import BLOCK_ROWS, load_groups, load_matrix, page_students
from tests.processes import private_database


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


# --- 0006: pupils as blocks, carried over from one row per pupil ----------------------

_ORGANISATIONS = sa.table(
    "organisations",
    sa.column("id", sa.Uuid()),
    sa.column("name", sa.String()),
    sa.column("created_at", sa.DateTime()),
)
_COHORTS = sa.table(
    "cohorts",
    sa.column("id", sa.Uuid()),
    sa.column("organisation_id", sa.Uuid()),
    sa.column("name", sa.String()),
    sa.column("features", sa.JSON()),
    sa.column("feature_labels", sa.JSON()),
    sa.column("target", sa.String()),
    sa.column("target_label", sa.String()),
    sa.column("grade_min", sa.Float()),
    sa.column("grade_max", sa.Float()),
    sa.column("n_students", sa.Integer()),
    sa.column("has_ids", sa.Boolean()),
    sa.column("stats", sa.JSON()),
    sa.column("group_column", sa.String()),
    sa.column("created_at", sa.DateTime()),
)
_STUDENTS = sa.table(
    "cohort_students",
    sa.column("cohort_id", sa.Uuid()),
    sa.column("row_index", sa.Integer()),
    sa.column("external_id", sa.String()),
    sa.column("group_label", sa.String()),
    sa.column("grades", sa.LargeBinary()),
)


def _old_cohort(
    connection: sa.Connection, organisation_id: uuid.UUID, name: str, n: int, ids: bool
) -> tuple[uuid.UUID, list[dict[str, Any]]]:
    """A cohort as revision 0004 stored it, one row per pupil; row 3 erased (a gap)."""
    cohort_id = uuid.uuid4()
    rows = [i for i in range(n + 1) if i != 3]
    rng = np.random.default_rng(n)
    grades = np.round(rng.uniform(0, 20, size=(len(rows), 3)), 2)
    students = [
        {
            "cohort_id": cohort_id,
            "row_index": row,
            "external_id": f"ine-{row:07d}" if ids else None,
            "group_label": None if not ids or row % 5 == 0 else f"3e{row % 4}",
            "grades": grades[i].astype("<f8").tobytes(),
        }
        for i, row in enumerate(rows)
    ]
    connection.execute(
        sa.insert(_COHORTS),
        [
            {
                "id": cohort_id,
                "organisation_id": organisation_id,
                "name": name,
                "features": ["maths", "info"],
                "feature_labels": ["Maths", "Info"],
                "target": "concours",
                "target_label": "Concours",
                "grade_min": 0.0,
                "grade_max": 20.0,
                "n_students": len(rows),
                "has_ids": ids,
                "stats": {},
                "group_column": "classe" if ids else None,
                "created_at": datetime.now(UTC),
            }
        ],
    )
    connection.execute(sa.insert(_STUDENTS), students)
    return cohort_id, students


def test_0006_carries_every_pupil_of_a_database_made_by_the_previous_head_over(
    database_url: str, tmp_path: Path
) -> None:
    old = private_database(database_url, tmp_path, "gradecast_migrate_0006", revision="0004")
    engine = sa.create_engine(old)
    try:
        with engine.begin() as connection:
            organisation_id = uuid.uuid4()
            connection.execute(
                sa.insert(_ORGANISATIONS),
                [{"id": organisation_id, "name": "old", "created_at": datetime.now(UTC)}],
            )
            # More than a block, and a cohort without ids or groups.
            big, big_rows = _old_cohort(connection, organisation_id, "big", BLOCK_ROWS + 10, True)
            small, small_rows = _old_cohort(connection, organisation_id, "small", 5, False)

        command.upgrade(alembic_config(old), "0006")
        with Session(engine) as session:
            for cohort_id, students in ((big, big_rows), (small, small_rows)):
                expected = np.frombuffer(b"".join(s["grades"] for s in students)).reshape(-1, 3)
                assert np.array_equal(load_matrix(session, cohort_id, 3), expected)
                assert load_groups(session, cohort_id) == [s["group_label"] for s in students]
                page = page_students(session, cohort_id, 20, BLOCK_ROWS - 10)
                wanted = students[BLOCK_ROWS - 10 : BLOCK_ROWS + 10]
                assert [(r, i, g) for r, i, g, _ in page] == [
                    (s["row_index"], s["external_id"], s["group_label"]) for s in wanted
                ]
                for (*_, grades), student in zip(page, wanted, strict=True):
                    assert grades.tobytes() == student["grades"]
            assert page_students(session, big, 3, 2)[1][0] == 4  # the gap is kept
            assert sa.inspect(engine).has_table("cohort_students") is False

        # And back: the same rows as before the upgrade.
        command.downgrade(alembic_config(old), "0004")
        with engine.connect() as connection:
            back = connection.execute(
                sa.select(_STUDENTS).order_by(_STUDENTS.c.cohort_id, _STUDENTS.c.row_index)
            ).all()
        before = sorted(big_rows + small_rows, key=lambda s: (str(s["cohort_id"]), s["row_index"]))
        assert (
            sorted(
                ({**row._asdict()} for row in back),
                key=lambda s: (str(s["cohort_id"]), s["row_index"]),
            )
            == before
        )
    finally:
        engine.dispose()


# --- 0010: a job's kind; the jobs before it trained ----------------------------------------

_JOBS = sa.table(
    "jobs",
    sa.column("id", sa.Uuid()),
    sa.column("organisation_id", sa.Uuid()),
    sa.column("model_name", sa.String()),
    sa.column("algorithm", sa.String()),
    sa.column("params", sa.JSON()),
    sa.column("activate", sa.String()),
    sa.column("status", sa.String()),
    sa.column("steps_done", sa.Integer()),
    sa.column("total_steps", sa.Integer()),
    sa.column("attempts", sa.Integer()),
    sa.column("cancel_requested", sa.Boolean()),
    sa.column("created_at", sa.DateTime()),
)


def test_0010_makes_every_earlier_job_a_training_job_and_back(
    database_url: str, tmp_path: Path
) -> None:
    old = private_database(database_url, tmp_path, "gradecast_migrate_0010", revision="0009")
    engine = sa.create_engine(old)
    job: dict[str, Any] = {
        "id": uuid.uuid4(),
        "organisation_id": uuid.uuid4(),
        "model_name": "concours",
        "algorithm": "gd",
        "params": {"seed": 0},
        "activate": "if_better",
        "status": "succeeded",
        "steps_done": 10,
        "total_steps": 10,
        "attempts": 1,
        "cancel_requested": False,
        "created_at": datetime.now(UTC),
    }
    try:
        with engine.begin() as connection:
            connection.execute(
                sa.insert(_ORGANISATIONS),
                [{"id": job["organisation_id"], "name": "old", "created_at": datetime.now(UTC)}],
            )
            connection.execute(sa.insert(_JOBS), [job])
        command.upgrade(alembic_config(old), "0010")
        with engine.begin() as connection:
            kinds = connection.execute(sa.text("SELECT kind, evaluation_id FROM jobs")).all()
            assert [tuple(row) for row in kinds] == [("training", None)]
            # An evaluation job has no training options.
            connection.execute(
                sa.insert(_JOBS),
                [{**job, "id": uuid.uuid4(), "algorithm": None, "activate": None, "params": {}}],
            )
            connection.execute(
                sa.text("UPDATE jobs SET kind = 'evaluation' WHERE algorithm IS NULL")
            )
        command.downgrade(alembic_config(old), "0009")
        with engine.connect() as connection:
            back = connection.execute(sa.select(_JOBS)).all()
        assert [row._asdict()["id"] for row in back] == [job["id"]]
        assert back[0]._asdict()["algorithm"] == "gd"
    finally:
        engine.dispose()
