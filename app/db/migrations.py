"""Alembic, driven from the application (``gradecast migrate``, readiness)."""

import logging
import threading
import time
from functools import lru_cache
from pathlib import Path

from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from alembic import command

logger = logging.getLogger("gradecast.migrations")


def _project_root() -> Path:
    """The folder holding alembic.ini: the source tree, or the working directory of an
    installed copy (the Docker image runs from the folder it copied alembic/ into)."""
    for candidate in (Path(__file__).resolve().parents[2], Path.cwd()):
        if (candidate / "alembic.ini").is_file():
            return candidate
    raise RuntimeError("alembic.ini not found next to the sources or in the working directory")


ROOT = _project_root()


def alembic_config(database_url: str) -> Config:
    config = Config(str(ROOT / "alembic.ini"))
    # The application's logging stays as it is (JSON): alembic.ini's plain-text logging
    # is for the `alembic` command only.
    config.attributes["configure_logger"] = False
    config.set_main_option("script_location", str(ROOT / "alembic"))
    # ConfigParser interpolation: a literal % in a password must be doubled.
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade_to_head(database_url: str) -> None:
    command.upgrade(alembic_config(database_url), "head")


@lru_cache
def head_revision() -> str | None:
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    return script.get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def wait_for_database(
    engine: Engine,
    timeout: float | None,
    *,
    at_head: bool,
    stop: threading.Event | None = None,
) -> bool:
    """Poll once a second until the database answers (and, with ``at_head``, is migrated
    to head): a container started beside its database must not fail for arriving first.
    False when ``timeout`` seconds passed, or ``stop`` was set, before that."""
    deadline = None if timeout is None else time.monotonic() + timeout
    said = ""
    while True:
        try:
            revision = current_revision(engine)
            if not at_head or revision == head_revision():
                return True
            waiting_for = "migrations"
        except OperationalError:
            waiting_for = "the database"
        if waiting_for != said:
            logger.info(f"waiting for {waiting_for}")
            said = waiting_for
        if deadline is not None and time.monotonic() >= deadline:
            return False
        if stop is not None and stop.wait(1.0):
            return False
        if stop is None:
            time.sleep(1.0)
