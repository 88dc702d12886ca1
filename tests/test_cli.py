"""The gradecast command, as an operator runs it."""

import os
import stat
import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa

from app.core.security import hash_key

ROOT = Path(__file__).resolve().parents[1]


def gradecast(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )


def test_migrate_then_create_key_in_any_organisation(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/cli.db"
    env = {"GRADECAST_DATABASE_URL": url, "GRADECAST_DATA_DIR": str(tmp_path)}
    gradecast("migrate", env=env)
    created = gradecast("create-key", "--organisation", "lycee-a", "--role", "trainer", env=env)
    key = created.stdout.strip()
    assert key.startswith("gc_")
    assert "lycee-a" in created.stderr
    assert key not in created.stderr
    engine = sa.create_engine(url)
    with engine.connect() as connection:
        row = connection.execute(
            sa.text(
                "SELECT k.role, o.name FROM api_keys k JOIN organisations o "
                "ON o.id = k.organisation_id WHERE k.key_hash = :h"
            ),
            {"h": hash_key(key)},
        ).one()
    engine.dispose()
    assert tuple(row) == ("trainer", "lycee-a")


def test_first_start_writes_an_admin_key_file_readable_by_owner_only(tmp_path: Path) -> None:
    from app.cli import ensure_admin_key
    from app.core.config import get_settings

    url = f"sqlite:///{tmp_path}/first.db"
    env = {"GRADECAST_DATABASE_URL": url, "GRADECAST_DATA_DIR": str(tmp_path)}
    gradecast("migrate", env=env)
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    get_settings.cache_clear()
    try:
        ensure_admin_key()
        key_file = tmp_path / "admin.key"
        first = key_file.read_text().strip()
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        ensure_admin_key()  # a second start keeps the first key
        assert key_file.read_text().strip() == first
    finally:
        for name, value in old.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        get_settings.cache_clear()
    engine = sa.create_engine(url)
    with engine.connect() as connection:
        role = connection.execute(
            sa.text("SELECT role FROM api_keys WHERE key_hash = :h"), {"h": hash_key(first)}
        ).scalar_one()
    engine.dispose()
    assert role == "admin"
