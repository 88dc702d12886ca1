"""Alembic, driven from the application (``gradecast migrate``, readiness).

The scripts are the top-level ``alembic/`` folder. The package reaches it as
``app/migrations``: a symlink in the sources, real files in a built wheel. Alembic finds it
as a package resource, so an installed copy needs no alembic.ini and works from any working
directory; alembic.ini is only for developers' ``alembic`` commands in the source tree.
"""

from functools import lru_cache

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

# Alembic's "package:path" form, resolved with importlib.resources.
SCRIPT_LOCATION = "app:migrations"


def alembic_config(database_url: str) -> Config:
    config = Config()
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
