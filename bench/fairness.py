"""Fairness under a flood: organisation A floods /predict and /jobs while organisation B
makes ordinary /predict requests. A must get 429s, and B's p99 latency must stay within 2×
of its value without the flood, measured in the same run.

One `uvicorn app.main:create_app` process (temporary SQLite, no in-process worker: jobs
only queue, as with the compose stack's separate workers), rate limits set small enough
for a flood to reach them (GRADECAST_RATE_LIMIT_PER_MINUTE, _PREDICT_PUPILS_PER_MINUTE,
_MAX_ACTIVE_JOBS). A's flood is two `wrk` processes (/predict with a class of 30 pupils,
/jobs), as fast as their connections go; B is one asyncio + httpx client sending one-pupil
/predict requests at a fixed rate, well under B's limit, on its own connections. Quiet and
flood phases alternate ``--rounds`` times; the ratio is of the medians of B's p99.

The client's headroom is shown, not assumed: B's achieved rate against its target, and
the rate of wrk's answers (mostly 429s) against what one core serves.

Run:  .venv/bin/python bench/fairness.py [--seconds 12] [--rounds 5] [--flood-connections 8]
The last line is one JSON object (p99_ratio, a_429_share, …); exit status 1 if a check fails.
"""

import argparse
import asyncio
import json
import os
import re
import shutil
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

ROOT = Path(__file__).resolve().parents[1]
ADMIN_KEY = "gc_bench_fairness_" + "k" * 32
B_RATE = 20.0  # B's requests per second: a school's information system, busy
LIMITS = {
    "GRADECAST_RATE_LIMIT_PER_MINUTE": "3000",  # 50/s per key: B uses 40 % of it
    "GRADECAST_PREDICT_PUPILS_PER_MINUTE": "30000",
    "GRADECAST_MAX_ACTIVE_JOBS": "20",
}
HAND_SET = {
    "features": ["maths", "info", "francais"],
    "target": "concours",
    "theta": [0, 0.33, 0.33, 0.33],
    "grade_range": [0, 20],
    "activate": True,
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def environment(data_dir: Path) -> dict[str, str]:
    return {
        **os.environ,
        "GRADECAST_DATA_DIR": str(data_dir),
        "GRADECAST_DATABASE_URL": f"sqlite:///{data_dir / 'fairness.db'}",
        "GRADECAST_BOOTSTRAP_ADMIN_KEY": ADMIN_KEY,
        "GRADECAST_WORKERS": "0",
        "GRADECAST_LOG_LEVEL": "WARNING",
        **LIMITS,
    }


def start_server(env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    subprocess.run([sys.executable, "-m", "app.cli", "migrate"], cwd=ROOT, env=env, check=True)
    command = [sys.executable, "-m", "uvicorn", "app.main:create_app", "--factory"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    command += ["--no-access-log"]
    # Its stderr is dropped: wrk stopping mid-request makes the server log ClientDisconnect.
    return subprocess.Popen(command, cwd=ROOT, env=env, stderr=subprocess.DEVNULL)


def wait_until_up(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit("the server exited")
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise SystemExit("the server did not start")


def organisation_key(env: dict[str, str], organisation: str) -> str:
    """An admin key of a new organisation, made the way operators do."""
    made = subprocess.run(
        [
            *(sys.executable, "-m", "app.cli", "create-key"),
            *("--organisation", organisation, "--role", "admin", "--name", "bench"),
        ],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return made.stdout.strip()


def prepare(url: str, key: str) -> str:
    """A cohort and an active hand-set version; returns the cohort's id."""
    auth = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=url, headers=auth, timeout=30) as client:
        cohort = client.post(
            "/cohorts",
            params={"name": "fairness"},
            content=(ROOT / "examples" / "cohort.csv").read_bytes(),
            headers={"Content-Type": "text/csv"},
        )
        version = client.post("/models/course/versions", json=HAND_SET)
        if cohort.status_code != 201 or version.status_code != 201:
            raise SystemExit(f"setup: {cohort.text[:200]} {version.text[:200]}")
        cohort_id: str = cohort.json()["id"]
        return cohort_id


def wrk_script(directory: Path, name: str, key: str, path: str, body: dict[str, Any]) -> Path:
    script = directory / f"{name}.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        f"wrk.path = {json.dumps(path)}\n"
        f"wrk.body = {json.dumps(json.dumps(body))}\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
        f'wrk.headers["Authorization"] = "Bearer {key}"\n'
    )
    return script


def start_wrk(url: str, script: Path, connections: int, seconds: float) -> subprocess.Popen[str]:
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds:.0f}s", "-s", str(script), url]
    return subprocess.Popen(command, stdout=subprocess.PIPE, text=True)


def wrk_figures(output: str) -> dict[str, float]:
    """Requests/s, the total, and the non-2xx answers from wrk's report."""
    total = re.search(r"(\d+) requests in", output)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    requests = int(total.group(1)) if total else 0
    return {
        "requests": requests,
        "rps": float(rate.group(1)) if rate else 0.0,
        "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
    }


async def ordinary(url: str, key: str, seconds: float) -> dict[str, float]:
    """B: one-pupil /predict at B_RATE per second, open loop (each request leaves at its
    time whatever the previous ones are doing); latency of the 200s."""
    body = json.dumps(
        {"model": "course", "students": [{"id": "n1", "maths": 13, "info": 14, "francais": 11}]}
    ).encode()
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    latencies: list[float] = []
    statuses: list[int] = []
    limits = httpx.Limits(max_connections=16, max_keepalive_connections=16)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:

        async def one() -> None:
            started = time.perf_counter()
            response = await client.post("/predict", content=body, headers=headers)
            statuses.append(response.status_code)
            if response.status_code == 200:
                latencies.append(time.perf_counter() - started)

        tasks = []
        start = time.perf_counter()
        count = int(seconds * B_RATE)
        for i in range(count):
            delay = start + i / B_RATE - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one()))
        sent_in = time.perf_counter() - start
        await asyncio.gather(*tasks)
    return {
        "requests": len(statuses),
        "ok": statuses.count(200),
        "achieved_rate": count / sent_in if sent_in > 0 else 0.0,
        "p50_ms": float(np.percentile(latencies, 50)) * 1000 if latencies else float("nan"),
        "p99_ms": float(np.percentile(latencies, 99)) * 1000 if latencies else float("nan"),
    }


def phase(
    url: str, b_key: str, flood: tuple[Path, Path] | None, connections: int, seconds: float
) -> dict[str, Any]:
    floods = []
    if flood is not None:
        floods = [start_wrk(url, script, connections, seconds + 1) for script in flood]
        time.sleep(0.5)  # the flood is under way before B is measured
    b = asyncio.run(ordinary(url, b_key, seconds))
    result: dict[str, Any] = {"b": b}
    if floods:
        outputs = [process.communicate(timeout=seconds + 30)[0] for process in floods]
        result["a_predict"], result["a_jobs"] = (wrk_figures(o) for o in outputs)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--flood-connections", type=int, default=8)
    args = parser.parse_args()
    if not (1 <= args.seconds <= 60 and 1 <= args.rounds <= 10 and args.flood_connections >= 1):
        raise SystemExit("keep the run bounded: seconds 1-60, rounds 1-10")
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed (apt-get install wrk)")

    with tempfile.TemporaryDirectory(prefix="gradecast-fairness-") as tmp:
        directory = Path(tmp)
        env = environment(directory)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        server = start_server(env, port)
        try:
            wait_until_up(url, server)
            a_key, b_key = organisation_key(env, "flooder"), organisation_key(env, "ordinary")
            a_cohort = prepare(url, a_key)
            prepare(url, b_key)
            pupils = [{"maths": 10, "info": 12, "francais": 14} for _ in range(30)]
            flood = (
                wrk_script(
                    directory, "predict", a_key, "/predict", {"model": "course", "students": pupils}
                ),
                wrk_script(
                    directory,
                    "jobs",
                    a_key,
                    "/jobs",
                    {"cohort_id": a_cohort, "model": "m", "algorithm": "closed_form"},
                ),
            )
            phase(url, b_key, None, args.flood_connections, 2)  # warm-up
            quiet, flooded = [], []
            for _ in range(args.rounds):
                quiet.append(phase(url, b_key, None, args.flood_connections, args.seconds))
                flooded.append(phase(url, b_key, flood, args.flood_connections, args.seconds))
        finally:
            server.terminate()
            server.wait(timeout=30)
    report(quiet, flooded, args)


def report(quiet: list[dict[str, Any]], flooded: list[dict[str, Any]], args: Any) -> None:
    quiet_p99 = statistics.median(r["b"]["p99_ms"] for r in quiet)
    flood_p99 = statistics.median(r["b"]["p99_ms"] for r in flooded)
    a_requests = sum(r["a_predict"]["requests"] + r["a_jobs"]["requests"] for r in flooded)
    a_refused = sum(r["a_predict"]["non_2xx"] + r["a_jobs"]["non_2xx"] for r in flooded)
    b_refused = sum(r["b"]["requests"] - r["b"]["ok"] for r in quiet + flooded)
    for i, (q, f) in enumerate(zip(quiet, flooded, strict=True)):
        print(
            f"round {i + 1}: B quiet p50 {q['b']['p50_ms']:.2f} p99 {q['b']['p99_ms']:.2f} ms; "
            f"B flooded p50 {f['b']['p50_ms']:.2f} p99 {f['b']['p99_ms']:.2f} ms "
            f"(B sent {f['b']['achieved_rate']:.1f}/s of {B_RATE:.0f}); A /predict "
            f"{f['a_predict']['rps']:.0f} req/s ({f['a_predict']['non_2xx']} refused), "
            f"A /jobs {f['a_jobs']['rps']:.0f} req/s ({f['a_jobs']['non_2xx']} refused)"
        )
    result = {
        "seconds": args.seconds,
        "rounds": args.rounds,
        "flood_connections": args.flood_connections,
        "limits": LIMITS,
        "b_rate": B_RATE,
        "b_quiet_p99_ms": round(quiet_p99, 2),
        "b_flooded_p99_ms": round(flood_p99, 2),
        "p99_ratio": round(flood_p99 / quiet_p99, 2),
        "a_requests": a_requests,
        "a_429_share": round(a_refused / a_requests, 4) if a_requests else 0.0,
        "b_refused": b_refused,
        "b_min_achieved_rate": round(min(r["b"]["achieved_rate"] for r in flooded), 1),
    }
    print(json.dumps(result))
    failed = result["p99_ratio"] > 2 or not a_refused or b_refused
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
