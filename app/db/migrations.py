"""Alembic, driven from the application (``gradecast migrate``, readiness).

The scripts are the top-level ``alembic/`` folder. The package reaches it as
``app/migrations``: a symlink in the sources, real files in a built wheel. Alembic finds it
as a package resource, so an installed copy needs no alembic.ini and works from any working
directory; alembic.ini is only for developers' ``alembic`` commands in the source tree.
"""

import logging
import threading
import time
from functools import lru_cache

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

# Alembic's "package:path" form, resolved with importlib.resources.
SCRIPT_LOCATION = "app:migrations"

logger = logging.getLogger("gradecast.migrations")


def alembic_config(database_url: str) -> Config:
    config = Config()
    # The application's logging stays as it is (JSON): alembic.ini's plain-text logging
    # is for the `alembic` command only.
    config.attributes["configure_logger"] = False
    config.set_main_option("script_location", SCRIPT_LOCATION)
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
