"""The ``gradecast`` command: serve, migrate, create-key, worker."""

import argparse
import logging
import os
import sys
from pathlib import Path

from app.core.config import get_settings
from app.db.models import Role
from app.db.session import Database, open_database, write_session

logger = logging.getLogger("gradecast")


def _database() -> Database:
    return open_database(get_settings())


def cmd_migrate(args: argparse.Namespace) -> int:
    from app.db.migrations import current_revision, upgrade_to_head, wait_for_database

    database = _database()
    try:
        if args.wait > 0 and not wait_for_database(database.engine, args.wait, at_head=False):
            logger.error("database unreachable", extra={"waited_seconds": args.wait})
            return 1
        before = current_revision(database.engine)
        upgrade_to_head(get_settings().resolved_database_url)
        after = current_revision(database.engine)
    finally:
        database.engine.dispose()
    if before == after:
        logger.info("database already at the latest migration", extra={"revision": after})
    else:
        logger.info("database migrated", extra={"from_revision": before, "to_revision": after})
    return 0


def clear_multiprocess_metrics() -> None:
    """prometheus_client's multiprocess folder holds the values of processes now gone:
    empty it before the server's processes start, as its documentation asks."""
    from app.core.metrics import multiprocess_dir

    directory = multiprocess_dir()
    if directory is None:
        return
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.db"):
        stale.unlink()


def ensure_admin_key() -> None:
    """First start without GRADECAST_BOOTSTRAP_ADMIN_KEY: make an admin key, print it once,
    keep it in <data_dir>/admin.key (mode 0600) for the README walk-through."""
    from app.services.keys import (
        ensure_bootstrap_key,
        get_or_create_organisation,
        has_any_key,
        issue_key,
    )

    settings = get_settings()
    database = _database()
    try:
        with write_session(database) as session:
            if settings.bootstrap_admin_key is not None:
                ensure_bootstrap_key(session, settings.bootstrap_admin_key.get_secret_value())
                return
            if has_any_key(session):
                return
            organisation = get_or_create_organisation(session, "default")
            _, plain = issue_key(session, organisation.id, "first admin", Role.admin)
        path = settings.data_dir / "admin.key"
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(plain + "\n")
        os.chmod(path, 0o600)
        print(
            f"\nCreated the first admin key of organisation 'default' (shown once, also in "
            f"{path}):\n\n    {plain}\n",
            file=sys.stderr,
        )
    finally:
        database.engine.dispose()


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    ensure_admin_key()
    clear_multiprocess_metrics()
    # Each process enforces its share of the per-key rate limits (README: Integrating).
    os.environ["GRADECAST_SERVER_PROCESSES"] = str(max(1, args.workers))
    uvicorn.run(
        "app.main:served_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=30,
    )
    return 0


def cmd_create_key(args: argparse.Namespace) -> int:
    from app.services.keys import get_or_create_organisation, issue_key

    database = _database()
    try:
        with write_session(database) as session:
            organisation = get_or_create_organisation(session, args.organisation)
            api_key, plain = issue_key(session, organisation.id, args.name, Role(args.role))
        print(plain)
        print(
            f"key {api_key.id} ({args.role}) created in organisation {args.organisation!r}",
            file=sys.stderr,
        )
    finally:
        database.engine.dispose()
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from app.worker.runner import run_standalone_worker

    return run_standalone_worker(get_settings(), threads=args.threads)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gradecast", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="serve the HTTP API")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    serve.set_defaults(func=cmd_serve)

    migrate = sub.add_parser("migrate", help="apply the Alembic migrations up to head")
    migrate.add_argument(
        "--wait",
        type=float,
        default=0,
        metavar="SECONDS",
        help="wait up to SECONDS for the database to answer first (containers)",
    )
    migrate.set_defaults(func=cmd_migrate)

    create_key = sub.add_parser("create-key", help="create an API key (printed on stdout)")
    create_key.add_argument("--organisation", required=True)
    create_key.add_argument("--role", required=True, choices=[r.value for r in Role])
    create_key.add_argument("--name", default="created from the shell")
    create_key.set_defaults(func=cmd_create_key)

    worker = sub.add_parser("worker", help="run training jobs (standalone worker process)")
    worker.add_argument("--threads", type=int, default=1)
    worker.set_defaults(func=cmd_worker)
    return parser


def main(argv: list[str] | None = None) -> int:
    from app.core.logging import configure_logging

    configure_logging(get_settings().log_level)
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
