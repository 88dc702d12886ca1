"""A bounded mixed load: 16 concurrent clients for a fixed time, on loopback only.

Each client loops over a weighted mix of what schools do: predict (one pupil or a class of
30), upload a small cohort (CSV), queue a training job, activate or roll back a version,
and read lists. Afterwards every write that was acknowledged (201/202/200 on PUT) is looked
up again, and every job must reach a final state.

  sqlite    one `gradecast serve` process with its in-process worker, the default SQLite
  postgres  `gradecast serve --workers 2` (API only) and two `gradecast worker` processes
            on one PostgreSQL database (GRADECAST_BENCH_POSTGRES_URL, default the local
            server's `test` database, in a database of its own: <db>_load)

Run:  .venv/bin/python bench/load.py [--backend sqlite|postgres] [--seconds 60] [--clients 16]
The last line is one JSON object; the exit status is 1 when a check fails.
"""

import argparse
import asyncio
import json
import os
import random
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
FEATURES = ("maths", "info", "francais")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def cohort_csv(rng: random.Random, n: int = 200) -> bytes:
    lines = ["id;Maths;Info;Français;Concours"]
    for i in range(n):
        grades = [round(rng.uniform(2, 19) * 2) / 2 for _ in FEATURES]
        concours = min(20.0, max(0.0, 0.48 * grades[0] + 0.53 * grades[1] + rng.gauss(0, 0.4)))
        cells = [f"{g:g}".replace(".", ",") for g in [*grades, round(concours, 2)]]
        lines.append(f"p{i};" + ";".join(cells))
    return ("\r\n".join(lines) + "\r\n").encode()


class Stats:
    def __init__(self) -> None:
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.status: Counter[tuple[str, int]] = Counter()
        self.server_errors: list[str] = []
        self.locked = 0
        self.cohorts: list[str] = []
        self.jobs: list[str] = []
        self.activations: list[tuple[str, int]] = []

    def record(self, kind: str, response: httpx.Response, seconds: float) -> None:
        self.latency[kind].append(seconds)
        self.status[(kind, response.status_code)] += 1
        if "database is locked" in response.text:
            self.locked += 1
        if response.status_code >= 500:
            self.server_errors.append(f"{kind}: {response.status_code} {response.text[:200]}")


async def client_loop(
    client: httpx.AsyncClient, stats: Stats, seed: int, until: float, model: str
) -> None:
    rng = random.Random(seed)
    my_cohorts: list[str] = []
    kinds = ["predict", "predict_class", "upload", "train", "activate", "read"]
    weights = [45, 15, 8, 12, 8, 12]
    while time.monotonic() < until:
        kind = rng.choices(kinds, weights)[0]
        start = time.perf_counter()
        if kind in ("predict", "predict_class"):
            size = 1 if kind == "predict" else 30
            students = [{f: rng.randint(4, 18) for f in FEATURES} for _ in range(size)]
            response = await client.post("/predict", json={"model": model, "students": students})
            if response.status_code == 409:  # no active version yet: expected early on
                pass
        elif kind == "upload" or (kind == "train" and not my_cohorts):
            kind = "upload"
            name = f"load-{seed}-{secrets.token_hex(4)}"
            response = await client.post(
                "/cohorts",
                params={"name": name},
                content=cohort_csv(rng),
                headers={"Content-Type": "text/csv"},
            )
            if response.status_code == 201:
                my_cohorts.append(response.json()["id"])
                stats.cohorts.append(response.json()["id"])
        elif kind == "train":
            algorithm = rng.choice(["closed_form", "gd", "sgd"])
            body: dict[str, Any] = {
                "cohort_id": rng.choice(my_cohorts),
                "model": model,
                "algorithm": algorithm,
            }
            if algorithm == "gd":
                body |= {"learning_rate": 0.002, "iterations": 300}
            elif algorithm == "sgd":
                body |= {"learning_rate": 0.001, "epochs": 5, "batch_size": 10}
            response = await client.post("/jobs", json=body)
            if response.status_code == 202:
                stats.jobs.append(response.json()["id"])
        elif kind == "activate":
            latest = await client.get(f"/models/{model}")
            if latest.status_code != 200 or latest.json()["latest_version"] < 1:
                continue
            version = rng.randint(1, latest.json()["latest_version"])
            response = await client.put(
                f"/models/{model}/active", json={"version": version, "reason": "load test"}
            )
            if response.status_code == 200:
                stats.activations.append((model, version))
        else:
            response = await client.get(rng.choice(["/cohorts", "/jobs", "/models"]))
        stats.record(kind, response, time.perf_counter() - start)


def start(command: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )


def wait_ready(url: str, processes: list[subprocess.Popen[bytes]]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if any(p.poll() is not None for p in processes):
            raise SystemExit("a server process exited at start")
        time.sleep(0.1)
    raise SystemExit("the server did not become ready")


def private_postgres(url: str) -> str:
    parsed = sa.engine.make_url(url)
    name = f"{parsed.database}_load"
    admin = sa.create_engine(parsed, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        connection.exec_driver_sql(f"CREATE DATABASE {name}")
    admin.dispose()
    return parsed.set(database=name).render_as_string(hide_password=False)


async def run(url: str, admin_key: str, seconds: float, clients: int) -> tuple[Stats, float]:
    async with httpx.AsyncClient(
        base_url=url, headers={"Authorization": f"Bearer {admin_key}"}, timeout=60
    ) as admin:
        created = await admin.post("/api-keys", json={"name": "load", "role": "trainer"})
        created.raise_for_status()
        trainer_key = created.json()["key"]
    stats = Stats()
    limits = httpx.Limits(max_connections=clients)
    async with httpx.AsyncClient(
        base_url=url, headers={"Authorization": f"Bearer {trainer_key}"}, timeout=60, limits=limits
    ) as client:
        started = time.monotonic()
        until = started + seconds
        await asyncio.gather(
            *(client_loop(client, stats, seed, until, "concours") for seed in range(clients))
        )
        elapsed = time.monotonic() - started
    return stats, elapsed


def verify(url: str, admin_key: str, stats: Stats) -> dict[str, int]:
    """Every acknowledged write is found again; every job ends."""
    missing = 0
    headers = {"Authorization": f"Bearer {admin_key}"}
    with httpx.Client(base_url=url, headers=headers, timeout=60) as client:
        for cohort in stats.cohorts:
            if client.get(f"/cohorts/{cohort}").status_code != 200:
                missing += 1
        deadline = time.monotonic() + 120
        pending = set(stats.jobs)
        final: Counter[str] = Counter()
        while pending and time.monotonic() < deadline:
            for job in list(pending):
                response = client.get(f"/jobs/{job}")
                if response.status_code != 200:
                    missing += 1
                    pending.discard(job)
                elif response.json()["status"] in ("succeeded", "failed", "cancelled"):
                    final[response.json()["status"]] += 1
                    pending.discard(job)
            time.sleep(0.2)
        history = client.get("/models/concours/activations", params={"limit": 1}).json()
        newest = history["data"][0]["to_version"] if history.get("data") else None
        model = client.get("/models/concours").json()
        # A PUT to the version already active is a no-op: not every 200 adds a record, but
        # the model's active version must be the newest record's.
        consistent = int(newest == model.get("active_version"))
        versions = model.get("latest_version", 0)
    return {
        "missing_writes": missing,
        "jobs_unfinished": len(pending),
        "jobs_succeeded": final["succeeded"],
        "jobs_failed": final["failed"],
        "activations_acknowledged": len(stats.activations),
        "activation_history_consistent": consistent,
        "versions": versions,
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--clients", type=int, default=16)
    args = parser.parse_args()

    admin_key = "gc_" + secrets.token_urlsafe(32)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    processes: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "GRADECAST_DATA_DIR": tmp,
            "GRADECAST_LOG_LEVEL": "WARNING",
            "GRADECAST_BOOTSTRAP_ADMIN_KEY": admin_key,
        }
        if args.backend == "postgres":
            env["GRADECAST_DATABASE_URL"] = private_postgres(
                os.environ.get(
                    "GRADECAST_BENCH_POSTGRES_URL",
                    "postgresql+psycopg://postgres@127.0.0.1:5432/test",
                )
            )
            env["GRADECAST_WORKERS"] = "0"
        subprocess.run(
            [str(BIN / "gradecast"), "migrate"], env=env, check=True, stderr=subprocess.DEVNULL
        )
        server_processes = 2 if args.backend == "postgres" else 1
        processes.append(
            start(
                [
                    str(BIN / "gradecast"),
                    "serve",
                    "--port",
                    str(port),
                    "--workers",
                    str(server_processes),
                ],
                env,
            )
        )
        if args.backend == "postgres":
            processes += [start([str(BIN / "gradecast"), "worker"], env) for _ in range(2)]
        try:
            wait_ready(url, processes)
            stats, elapsed = asyncio.run(run(url, admin_key, args.seconds, args.clients))
            checks = verify(url, admin_key, stats)
        finally:
            for process in processes:
                process.send_signal(signal.SIGTERM)
            for process in processes:
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()

    total = sum(len(v) for v in stats.latency.values())
    print(
        f"{args.backend}: {args.clients} clients for {elapsed:.1f} s, {total} requests "
        f"({total / elapsed:.0f}/s)"
    )
    for kind, values in sorted(stats.latency.items()):
        ms = np.array(values) * 1000
        statuses = {s: c for (k, s), c in stats.status.items() if k == kind}
        print(
            f"  {kind:14s} {len(values):6d}  p50 {np.percentile(ms, 50):7.1f} ms  "
            f"p99 {np.percentile(ms, 99):7.1f} ms  {statuses}"
        )
    for error in stats.server_errors[:5]:
        print("  server error:", error)
    print("  checks:", checks)
    summary = {
        "backend": args.backend,
        "clients": args.clients,
        "seconds": round(elapsed, 1),
        "requests": total,
        "requests_per_second": round(total / elapsed, 1),
        "server_errors": len(stats.server_errors),
        "database_locked": stats.locked,
        "cohorts_created": len(stats.cohorts),
        "jobs_created": len(stats.jobs),
        "predict_p50_ms": round(statistics.median(stats.latency["predict"]) * 1000, 1)
        if stats.latency["predict"]
        else None,
        **checks,
    }
    print(json.dumps(summary))
    ok = (
        not stats.server_errors
        and stats.locked == 0
        and checks["missing_writes"] == 0
        and checks["jobs_unfinished"] == 0
        and checks["activation_history_consistent"] == 1
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
