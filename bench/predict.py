"""Load test of POST /predict against a bare endpoint of the same app, on loopback.

Starts uvicorn as a subprocess (one worker process, a temporary SQLite database, a
bootstrap admin key), with a bench-only app factory: the real app plus
``POST /bench/constant`` (reads the body, returns a constant) and a header
``X-Bench-Server-Ms`` giving the time the server spent on each request.

Measures, with one asyncio + httpx client and N concurrent connections:
  1. requests/s and p50/p99 latency of /bench/constant and of /predict with one pupil
     (same body size, same client, same duration);
  2. a 10,000-pupil /predict: server time and client round trip, p50.

Run:  .venv/bin/python bench/predict.py [--connections 16] [--seconds 5] [--batches 30]
The last line is one JSON object (throughput_ratio, batch10k_p50_ms, …).
"""

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from fastapi import FastAPI, Request, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

ROOT = Path(__file__).resolve().parents[1]
ADMIN_KEY = "gc_bench_" + "k" * 40
SERVER_TIME_HEADER = b"x-bench-server-ms"


class ServerTiming:
    """Adds the server's own time for the request, body reading included."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()

        async def timed_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                elapsed = f"{(time.perf_counter() - started) * 1000:.3f}".encode()
                message["headers"] = [*message.get("headers", []), (SERVER_TIME_HEADER, elapsed)]
            await send(message)

        await self.app(scope, receive, timed_send)


def create_bench_app() -> FastAPI:
    """The service's app, plus the constant endpoint the bench compares /predict with."""
    from app.main import create_app

    app = create_app()

    @app.post("/bench/constant", include_in_schema=False)
    async def constant(request: Request) -> Response:
        await request.body()
        return Response(b'{"ok":true}', media_type="application/json")

    app.add_middleware(ServerTiming)
    return app


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_server(data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "GRADECAST_DATA_DIR": str(data_dir),
        "GRADECAST_DATABASE_URL": f"sqlite:///{data_dir / 'bench.db'}",
        "GRADECAST_BOOTSTRAP_ADMIN_KEY": ADMIN_KEY,
        "GRADECAST_WORKERS": "0",
        "GRADECAST_LOG_LEVEL": "WARNING",
    }
    subprocess.run([sys.executable, "-m", "app.cli", "migrate"], cwd=ROOT, env=env, check=True)
    command = [sys.executable, "-m", "uvicorn", "bench.predict:create_bench_app", "--factory"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    command += ["--no-access-log"]
    return subprocess.Popen(command, cwd=ROOT, env=env)


def wait_until_up(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit("the server exited")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise SystemExit("the server did not start")


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


async def load(
    client: httpx.AsyncClient, path: str, body: bytes, connections: int, seconds: float
) -> dict[str, float]:
    """Each of ``connections`` tasks sends requests back to back for ``seconds``."""
    latencies: list[float] = []
    headers = {"Content-Type": "application/json"}
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            response = await client.post(path, content=body, headers=headers)
            if response.status_code != 200:
                raise SystemExit(f"{path}: {response.status_code} {response.text[:200]}")
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(connections)))
    elapsed = time.perf_counter() - started
    return {
        "requests": len(latencies),
        "rps": len(latencies) / elapsed,
        "p50_ms": percentile(latencies, 50) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
    }


async def batches(client: httpx.AsyncClient, body: bytes, count: int) -> dict[str, float]:
    server_ms: list[float] = []
    round_trip_ms: list[float] = []
    for _ in range(count):
        started = time.perf_counter()
        response = await client.post(
            "/predict", content=body, headers={"Content-Type": "application/json"}
        )
        round_trip_ms.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            raise SystemExit(f"batch: {response.status_code} {response.text[:200]}")
        server_ms.append(float(response.headers[SERVER_TIME_HEADER.decode()]))
    return {
        "server_p50_ms": statistics.median(server_ms),
        "server_p99_ms": percentile(server_ms, 99),
        "round_trip_p50_ms": statistics.median(round_trip_ms),
    }


async def run(url: str, connections: int, seconds: float, batch_count: int) -> dict[str, Any]:
    auth = {"Authorization": f"Bearer {ADMIN_KEY}"}
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(base_url=url, headers=auth, limits=limits, timeout=30) as client:
        registered = await client.post(
            "/models/concours/versions",
            json={
                "features": ["maths", "info", "francais"],
                "target": "concours",
                "theta": [0, 0.33, 0.33, 0.33],
                "residual_std": 1.2,
                "n_train": 500,
                "activate": True,
            },
        )
        if registered.status_code != 201:
            raise SystemExit(f"register: {registered.status_code} {registered.text}")
        one = json.dumps(
            {
                "model": "concours",
                "students": [{"id": "n1", "maths": 13, "info": 14, "francais": 11}],
            }
        ).encode()
        rng = np.random.default_rng(0)
        grades = np.round(rng.uniform(0, 20, size=(10_000, 3)), 2).tolist()
        many = json.dumps(
            {
                "model": "concours",
                "students": [
                    {"id": f"p{i}", "maths": m, "info": info, "francais": f}
                    for i, (m, info, f) in enumerate(grades)
                ],
            }
        ).encode()

        await load(client, "/bench/constant", one, connections, 1.0)  # warm-up
        await load(client, "/predict", one, connections, 1.0)
        constant = await load(client, "/bench/constant", one, connections, seconds)
        single = await load(client, "/predict", one, connections, seconds)
        await batches(client, many, 3)
        batch = await batches(client, many, batch_count)
    return {
        "connections": connections,
        "seconds": seconds,
        "constant": constant,
        "predict_one": single,
        "batch10k": batch,
        "throughput_ratio": round(single["rps"] / constant["rps"], 3),
        "batch10k_p50_ms": round(batch["server_p50_ms"], 2),
        "batch10k_round_trip_p50_ms": round(batch["round_trip_p50_ms"], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--batches", type=int, default=30)
    args = parser.parse_args()
    if not (1 <= args.connections <= 256 and 0 < args.seconds <= 120 and 1 <= args.batches <= 1000):
        raise SystemExit("keep the run bounded: connections 1-256, seconds ≤ 120, batches ≤ 1000")

    with tempfile.TemporaryDirectory(prefix="gradecast-bench-") as tmp:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        server = start_server(Path(tmp), port)
        try:
            wait_until_up(url, server)
            result = asyncio.run(run(url, args.connections, args.seconds, args.batches))
        finally:
            server.terminate()
            server.wait(timeout=30)
    for name in ("constant", "predict_one"):
        figures = result[name]
        print(
            f"{name:12} {figures['rps']:8.0f} req/s  p50 {figures['p50_ms']:6.2f} ms  "
            f"p99 {figures['p99_ms']:6.2f} ms"
        )
    batch = result["batch10k"]
    print(
        f"batch 10k    server p50 {batch['server_p50_ms']:.2f} ms  p99 "
        f"{batch['server_p99_ms']:.2f} ms  round trip p50 {batch['round_trip_p50_ms']:.2f} ms"
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
