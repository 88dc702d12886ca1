"""CPU of one request through the whole ASGI app, in process: gradecast's 1-pupil /predict
and /healthz against bench/predict.py's bare FastAPI app, without HTTP or a socket.

The app is called as uvicorn calls it (a scope, a receive that hands the whole body, a send
that keeps the messages), after its lifespan started: gradecast with an SQLite database in a
temporary folder, its logging set up as ``gradecast serve`` does (the access line written,
to /dev/null), Θ registered as bench/predict.py does, the per-key rate limits lifted. So what
is measured is the framework, the middlewares and the endpoint: what uvicorn adds over HTTP
is the same for both apps.

Each figure is the median over ``--batches`` batches of ``--requests`` calls, in µs of this
process's CPU (time.process_time); the two apps alternate, batch by batch. gradecast's
/predict is also measured with the audit trail's per-minute count left out (its ``add``
made a no-op for that batch only), so that what recording predictions costs a request is
read off one run: ``audit_ratio`` is /predict's rate with the count over its rate without
(issue 13 asks for at least 0.8).

Run:  .venv/bin/python bench/request_path.py [--batches 30] [--requests 500]
The last line is one JSON object.
"""

import argparse
import asyncio
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

from predict import (
    ADMIN_KEY,
    FEATURES,
    THETA,
    bodies,
    create_bare_app,
    gradecast_settings,
)  # bench/predict.py

Message = MutableMapping[str, Any]
App = Callable[
    [
        MutableMapping[str, Any],
        Callable[[], Awaitable[Message]],
        Callable[[Message], Awaitable[None]],
    ],
    Awaitable[None],
]


def scope(method: str, path: str, body: bytes) -> dict[str, Any]:
    headers = [
        (b"host", b"127.0.0.1"),
        (b"authorization", f"Bearer {ADMIN_KEY}".encode()),
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }


async def call(app: App, method: str, path: str, body: bytes) -> int:
    """One request; its status."""
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope(method, path, body), receive, send)
    status: int = sent[0]["status"]
    return status


async def batch_us(app: App, method: str, path: str, body: bytes, requests: int) -> float:
    started = time.process_time()
    for _ in range(requests):
        await call(app, method, path, body)
    return (time.process_time() - started) / requests * 1e6


def gradecast_app(folder: Path) -> Any:
    """The app as ``gradecast serve`` makes it, on a migrated SQLite database."""
    os.environ.update(gradecast_settings(folder))
    from app.cli import ensure_admin_key
    from app.core.config import get_settings
    from app.core.logging import configure_logging
    from app.db.migrations import upgrade_to_head
    from app.main import create_app

    get_settings.cache_clear()
    upgrade_to_head(get_settings().resolved_database_url)
    ensure_admin_key()
    configure_logging("INFO")
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(open(os.devnull, "w"))  # noqa: SIM115 (lives as long as the bench)
    return create_app()


async def measure(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    one = bodies()["one"]
    gradecast = gradecast_app(folder)
    bare = create_bare_app()
    async with gradecast.router.lifespan_context(gradecast):
        version = {
            "features": FEATURES,
            "target": "concours",
            "theta": THETA,
            "residual_std": 1.2,
            "n_train": 500,
            "activate": True,
        }
        status = await call(
            gradecast, "POST", "/models/concours/versions", json.dumps(version).encode()
        )
        if status != 201:
            raise SystemExit(f"register: {status}")
        cases = {"predict": ("POST", "/predict", one), "healthz": ("GET", "/healthz", b"")}
        apps: dict[str, App] = {"gradecast": gradecast, "bare": bare}
        for name, app in apps.items():
            for method, path, body in cases.values():
                if (status := await call(app, method, path, body)) != 200:
                    raise SystemExit(f"{name} {path}: {status}")
        counts = gradecast.state.gradecast.predict_counts
        counted = counts.add

        async def uncounted_us() -> float:
            counts.add = _not_counted
            try:
                return await batch_us(gradecast, "POST", "/predict", one, args.requests)
            finally:
                counts.add = counted

        runs: dict[str, list[float]] = {}
        for round_ in range(args.batches):
            for case, (method, path, body) in cases.items():
                for name, app in apps.items():
                    # /predict without the audit count right beside it, before or after
                    # it in turn.
                    beside = case == "predict" and name == "gradecast"
                    if beside and round_ % 2:
                        runs.setdefault("predict/gradecast-uncounted", []).append(
                            await uncounted_us()
                        )
                    figure = await batch_us(app, method, path, body, args.requests)
                    runs.setdefault(f"{case}/{name}", []).append(figure)
                    if beside and not round_ % 2:
                        runs.setdefault("predict/gradecast-uncounted", []).append(
                            await uncounted_us()
                        )
    medians = {key: round(statistics.median(values), 1) for key, values in runs.items()}
    return {
        "us_per_request": medians,
        "predict_ratio": round(medians["predict/bare"] / medians["predict/gradecast"], 3),
        "healthz_ratio": round(medians["healthz/bare"] / medians["healthz/gradecast"], 3),
        "audit_ratio": round(
            medians["predict/gradecast-uncounted"] / medians["predict/gradecast"], 3
        ),
    }


def _not_counted(*_: object) -> None:
    """The audit count's ``add`` when it is left out."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--requests", type=int, default=500)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        result = asyncio.run(measure(args, Path(tmp)))
    for key, us in result["us_per_request"].items():
        print(f"{key:20} {us:8.1f} µs CPU a request", file=sys.stderr)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
