"""Load test of /predict, /healthz and the OIP v2 endpoint under wrk, against peers serving
the same linear model Θ = (0, 0.33, 0.33, 0.33) on the same machine, one server process each:

- ``bare``: a bare FastAPI app: the same 1-pupil body parsed by a pydantic model, the answer
  computed with numpy; and a bare ``GET /healthz``;
- ``mlserver``: MLServer with its sklearn runtime (a LinearRegression with that Θ), Open
  Inference Protocol v2, when installed apart (it pins FastAPI < 0.116, gradecast needs
  ≥ 0.142): ``make .venv-mlserver/bin/mlserver``.

Each figure is the median of ``--rounds`` rounds; in a round every scenario runs on every
server in turn (the order alternating between rounds), ``--seconds`` each, with wrk
(1 thread, ``--connections``). The client's CPU (wrk's, from its rusage) is printed as a
share of one core: near 100% would mean the client, not the server, is the limit.

Then 16 connections post 10,000-pupil batches for ``--batch-seconds`` and the server's RSS
is read. The last line is one JSON object with every ratio of issue 15's HTTP targets.

Run:  .venv/bin/python bench/predict.py [--seconds 5] [--rounds 3] [--batch-seconds 10]
      (wrk: ``command -v wrk || apt-get install -y wrk``, as ``make bench`` does)
"""

import argparse
import json
import os
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import psutil
from fastapi import FastAPI
from fastapi.responses import Response
from pydantic import BaseModel

ROOT = Path(__file__).resolve().parents[1]
ADMIN_KEY = "gc_bench_" + "k" * 40
THETA = [0.0, 0.33, 0.33, 0.33]
FEATURES = ["maths", "info", "francais"]
DEFAULT_MLSERVER = ROOT / ".venv-mlserver" / "bin" / "mlserver"

# --- the bare peer --------------------------------------------------------------------------


class BareRequest(BaseModel):
    model: str
    students: list[dict[str, float | int | str | None]]


def create_bare_app() -> FastAPI:
    """The floor of the stack: FastAPI, a pydantic body, a numpy answer, nothing else."""
    app = FastAPI()
    weights = np.asarray(THETA[1:])

    @app.post("/predict")
    async def predict(request: BareRequest) -> Response:
        X = np.asarray([[s[f] for f in FEATURES] for s in request.students], dtype=np.float64)
        raw = X @ weights + THETA[0]
        ids = [s.get("id") for s in request.students]
        answers = zip(ids, raw.tolist(), strict=True)
        body = {"predictions": [{"id": i, "prediction": p} for i, p in answers]}
        return Response(orjson.dumps(body), media_type="application/json")

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


# --- servers --------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Server:
    name: str
    url: str
    process: subprocess.Popen[bytes]

    @property
    def pid(self) -> int:
        """The process that serves (mlserver's is the parent; uvicorn's the process)."""
        return self.process.pid

    def cpu_seconds(self) -> float:
        proc = psutil.Process(self.pid)
        total = sum(proc.cpu_times()[:2])
        for child in proc.children(recursive=True):
            total += sum(child.cpu_times()[:2])
        return float(total)

    def rss_mb(self) -> float:
        proc = psutil.Process(self.pid)
        rss = proc.memory_info().rss
        rss += sum(c.memory_info().rss for c in proc.children(recursive=True))
        return float(rss / 2**20)


def wait_until_up(url: str, process: subprocess.Popen[bytes], path: str) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{url}: the server exited")
        try:
            if httpx.get(f"{url}{path}", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url}: the server did not start")


def gradecast_settings(data_dir: Path) -> dict[str, str]:
    """The environment gradecast is measured with (bench/request_path.py uses it too)."""
    return {
        "GRADECAST_DATA_DIR": str(data_dir),
        "GRADECAST_DATABASE_URL": f"sqlite:///{data_dir / 'bench.db'}",
        "GRADECAST_BOOTSTRAP_ADMIN_KEY": ADMIN_KEY,
        "GRADECAST_WORKERS": "0",
        # Throughput is measured here, not the per-key limits (10k-pupil batches at full
        # speed spend the default 6M pupils a minute in 20 s): out of the way.
        "GRADECAST_RATE_LIMIT_PER_MINUTE": str(10**9),
        "GRADECAST_PREDICT_PUPILS_PER_MINUTE": str(10**12),
        # The access line is part of what a request costs: it is written (to /dev/null).
        "GRADECAST_LOG_LEVEL": "INFO",
    }


def start_gradecast(data_dir: Path) -> Server:
    port = free_port()
    env = {**os.environ, **gradecast_settings(data_dir)}
    subprocess.run([sys.executable, "-m", "app.cli", "migrate"], cwd=ROOT, env=env, check=True)
    # As the image runs it: `gradecast serve` (its logging set up, one process).
    command = [sys.executable, "-m", "app.cli", "serve", "--host", "127.0.0.1", "--port", str(port)]
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    wait_until_up(url, process, "/readyz")
    registered = httpx.post(
        f"{url}/models/concours/versions",
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        json={
            "features": FEATURES,
            "target": "concours",
            "theta": THETA,
            "residual_std": 1.2,
            "n_train": 500,
            "activate": True,
        },
    )
    if registered.status_code != 201:
        raise SystemExit(f"register: {registered.status_code} {registered.text}")
    return Server("gradecast", url, process)


def start_bare() -> Server:
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "bench.predict:create_bare_app", "--factory"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    command += ["--no-access-log"]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    wait_until_up(url, process, "/healthz")
    return Server("bare", url, process)


_SKLEARN_MODEL = textwrap.dedent(
    """
    import sys, joblib, numpy as np
    from sklearn.linear_model import LinearRegression
    model = LinearRegression()
    model.coef_ = np.asarray({weights}, dtype=np.float64)
    model.intercept_ = {intercept}
    model.n_features_in_ = {p}
    joblib.dump(model, sys.argv[1])
    """
)


def start_mlserver(executable: Path, folder: Path) -> Server:
    python = executable.with_name("python")
    model_dir = folder / "concours"
    model_dir.mkdir(parents=True)
    script = _SKLEARN_MODEL.format(weights=THETA[1:], intercept=THETA[0], p=len(FEATURES))
    subprocess.run([str(python), "-c", script, str(model_dir / "model.joblib")], check=True)
    (model_dir / "model-settings.json").write_text(
        json.dumps(
            {
                "name": "concours",
                "implementation": "mlserver_sklearn.SKLearnModel",
                "parameters": {"uri": "./model.joblib", "version": "v1"},
            }
        )
    )
    port = free_port()
    (folder / "settings.json").write_text(
        json.dumps(
            {
                "http_port": port,
                "grpc_port": free_port(),
                "metrics_port": free_port(),
                "parallel_workers": 0,
                "debug": False,
            }
        )
    )
    process = subprocess.Popen(
        [str(executable), "start", str(folder)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    wait_until_up(url, process, "/v2/models/concours/ready")
    return Server("mlserver", url, process)


@contextmanager
def running(server: Server) -> Iterator[Server]:
    try:
        yield server
    finally:
        server.process.terminate()
        try:
            server.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.process.kill()


# --- bodies ---------------------------------------------------------------------------------


def bodies() -> dict[str, bytes]:
    one = {"model": "concours", "students": [{"id": "n1", "maths": 13, "info": 14, "francais": 11}]}
    rng = np.random.default_rng(0)
    grades = np.round(rng.uniform(0, 20, size=(10_000, 3)), 2)
    ids = [f"p{i}" for i in range(len(grades))]
    objects = {
        "model": "concours",
        "students": [
            {"id": i, **dict(zip(FEATURES, row, strict=True))}
            for i, row in zip(ids, grades.tolist(), strict=True)
        ],
    }
    columns = {
        "model": "concours",
        "columns": {f: grades[:, j].tolist() for j, f in enumerate(FEATURES)},
        "ids": ids,
    }
    # The one output MLServer's sklearn runtime answers (its `predict`); gradecast would
    # otherwise also compute and send raw, extrapolated and the interval.
    v2 = {
        "inputs": [
            {"name": f, "shape": [len(grades)], "datatype": "FP64", "data": grades[:, j].tolist()}
            for j, f in enumerate(FEATURES)
        ],
        "outputs": [{"name": "prediction"}],
    }
    mlserver = {
        "inputs": [
            {
                "name": "input-0",
                "shape": list(grades.shape),
                "datatype": "FP64",
                "data": grades.ravel().tolist(),
            }
        ]
    }
    return {
        "one": orjson.dumps(one),
        "objects": orjson.dumps(objects),
        "columns": orjson.dumps(columns),
        "v2": orjson.dumps(v2),
        "mlserver": orjson.dumps(mlserver),
    }


@dataclass(frozen=True)
class Scenario:
    name: str
    server: str
    path: str
    body: str | None  # a key of bodies(); None: GET


SCENARIOS = [
    Scenario("one_pupil", "gradecast", "/predict", "one"),
    Scenario("one_pupil", "bare", "/predict", "one"),
    Scenario("healthz", "gradecast", "/healthz", None),
    Scenario("healthz", "bare", "/healthz", None),
    Scenario("objects_10k", "gradecast", "/predict", "objects"),
    # Like for like with MLServer, which answers predictions only.
    Scenario("objects_10k_lean", "gradecast", "/predict?fields=prediction", "objects"),
    Scenario("columns_10k", "gradecast", "/predict?fields=prediction", "columns"),
    Scenario("v2_10k", "gradecast", "/v2/models/concours/infer", "v2"),
    Scenario("v2_10k", "mlserver", "/v2/models/concours/infer", "mlserver"),
]

# --- wrk ------------------------------------------------------------------------------------

_LUA = """
wrk.method = os.getenv("BENCH_METHOD")
wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_KEY")
local path = os.getenv("BENCH_BODY")
if path ~= "" then
  local f = assert(io.open(path, "rb"))
  wrk.body = f:read("*a")
  f:close()
  wrk.headers["Content-Type"] = "application/json"
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests": %d, "duration_us": %d, "errors": %d, "non2xx": %d, ' ..
    '"p50_us": %d, "p99_us": %d}\\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(99)))
end
"""


def wrk(
    url: str, body_file: Path | None, connections: int, seconds: float, lua: Path
) -> dict[str, float]:
    env = {
        **os.environ,
        "BENCH_METHOD": "GET" if body_file is None else "POST",
        "BENCH_KEY": ADMIN_KEY,
        "BENCH_BODY": "" if body_file is None else str(body_file),
    }
    command = ["wrk", "-t1", f"-c{connections}", f"-d{round(seconds)}s", "--timeout", "10s"]
    command += ["-s", str(lua), url]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    output = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    match = re.search(r"^BENCH (\{.*\})$", output, re.MULTILINE)
    if match is None:
        raise SystemExit(f"wrk said: {output}")
    figures = json.loads(match.group(1))
    figures["p99_over_p50"] = figures["p99_us"] / max(figures["p50_us"], 1)
    if figures["errors"] or figures["non2xx"]:
        raise SystemExit(f"{url}: {figures['errors']} errors, {figures['non2xx']} non-2xx")
    wall = figures["duration_us"] / 1e6
    client_cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {
        "rps": figures["requests"] / wall,
        "p50_ms": figures["p50_us"] / 1000,
        "p99_ms": figures["p99_us"] / 1000,
        "p99_over_p50": figures["p99_over_p50"],
        "client_cpu_share": client_cpu / wall,
    }


def measure(
    server: Server, scenario: Scenario, files: dict[str, Path], args: argparse.Namespace, lua: Path
) -> dict[str, float]:
    body = None if scenario.body is None else files[scenario.body]
    cpu_before = server.cpu_seconds()
    figures = wrk(server.url + scenario.path, body, args.connections, args.seconds, lua)
    requests = figures["rps"] * args.seconds
    figures["server_cpu_ms"] = (server.cpu_seconds() - cpu_before) * 1000 / max(requests, 1)
    return figures


def medians(runs: list[dict[str, float]]) -> dict[str, float]:
    return {key: round(statistics.median(r[key] for r in runs), 3) for key in runs[0]}


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round(a / b, 3)


def run(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """Long because it is the whole bench: servers up, alternating rounds, the RSS run and
    every ratio of the targets, in one place to read."""
    files = {}
    for name, content in bodies().items():
        files[name] = tmp / f"{name}.json"
        files[name].write_bytes(content)
    lua = tmp / "bench.lua"
    lua.write_text(_LUA)
    mlserver = Path(args.mlserver)
    with (
        running(start_gradecast(tmp)) as gradecast,
        running(start_bare()) as bare,
    ):
        servers = {"gradecast": gradecast, "bare": bare}
        ml_context = (
            running(start_mlserver(mlserver, tmp / "mlserver")) if mlserver.exists() else None
        )
        with ml_context if ml_context is not None else _nothing() as ml:
            if ml is not None:
                servers["mlserver"] = ml
            scenarios = [s for s in SCENARIOS if s.server in servers and s.name in args.scenarios]
            warm = argparse.Namespace(**{**vars(args), "seconds": 1})
            for scenario in scenarios:
                measure(servers[scenario.server], scenario, files, warm, lua)
            runs: dict[tuple[str, str], list[dict[str, float]]] = {}
            for round_ in range(args.rounds):
                order = scenarios if round_ % 2 == 0 else scenarios[::-1]
                for scenario in order:
                    figures = measure(servers[scenario.server], scenario, files, args, lua)
                    runs.setdefault((scenario.name, scenario.server), []).append(figures)
                    print(
                        f"round {round_ + 1} {scenario.name:12} {scenario.server:10} "
                        f"{figures['rps']:8.0f} req/s  p50 {figures['p50_ms']:7.2f} ms  "
                        f"p99 {figures['p99_ms']:7.2f} ms  server CPU "
                        f"{figures['server_cpu_ms']:6.2f} ms/req  client CPU "
                        f"{figures['client_cpu_share']:.0%} of a core",
                        flush=True,
                    )
            rss_run = None
            if "objects_10k" in args.scenarios:
                long = argparse.Namespace(**{**vars(args), "seconds": args.batch_seconds})
                objects = next(s for s in SCENARIOS if s.name == "objects_10k")
                rss_run = measure(gradecast, objects, files, long, lua)
            rss = {name: round(server.rss_mb(), 1) for name, server in servers.items()}
    result = {key: medians(value) for key, value in runs.items()}

    def rps(name: str, server: str) -> float | None:
        figures = result.get((name, server))
        return None if figures is None else figures["rps"]

    def p99_over_p50(server: str) -> float | None:
        figures = result.get(("one_pupil", server))
        return None if figures is None else round(figures["p99_over_p50"], 2)

    client_shares = [r["client_cpu_share"] for v in runs.values() for r in v]
    return {
        "rounds": args.rounds,
        "seconds": args.seconds,
        "connections": args.connections,
        "medians": {f"{name}/{server}": figures for (name, server), figures in result.items()},
        "rss_run_10k_objects": rss_run,
        "rss_mb": rss,
        "client_cpu_share_max": round(max(client_shares), 3),
        "mlserver": "measured" if "mlserver" in servers else f"not installed ({mlserver})",
        "targets": {
            "one_pupil_vs_bare": ratio(rps("one_pupil", "gradecast"), rps("one_pupil", "bare")),
            "healthz_vs_bare": ratio(rps("healthz", "gradecast"), rps("healthz", "bare")),
            "v2_10k_vs_mlserver": ratio(rps("v2_10k", "gradecast"), rps("v2_10k", "mlserver")),
            "columns_10k_vs_mlserver": ratio(
                rps("columns_10k", "gradecast"), rps("v2_10k", "mlserver")
            ),
            "objects_10k_vs_mlserver": ratio(
                rps("objects_10k", "gradecast"), rps("v2_10k", "mlserver")
            ),
            "objects_10k_prediction_only_vs_mlserver": ratio(
                rps("objects_10k_lean", "gradecast"), rps("v2_10k", "mlserver")
            ),
            "rss_mb_after_10k_batches": rss["gradecast"] if rss_run is not None else None,
            "one_pupil_p99_over_p50": p99_over_p50("gradecast"),
            "bare_one_pupil_p99_over_p50": p99_over_p50("bare"),
        },
        "goals": {
            "one_pupil_vs_bare": ">= 0.7",
            "healthz_vs_bare": ">= 0.8",
            "v2_10k_vs_mlserver": ">= 1.0 (v2 or columns)",
            "columns_10k_vs_mlserver": ">= 1.0 (v2 or columns)",
            "objects_10k_vs_mlserver": ">= 0.5",
            "objects_10k_prediction_only_vs_mlserver": "(the same, fields=prediction)",
            "rss_mb_after_10k_batches": "<= 300",
            "one_pupil_p99_over_p50": "<= 3 (median of the rounds' ratios)",
            "bare_one_pupil_p99_over_p50": "(the floor's own, on the same machine)",
        },
    }


@contextmanager
def _nothing() -> Iterator[None]:
    yield None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-seconds", type=int, default=10)
    parser.add_argument("--mlserver", default=str(DEFAULT_MLSERVER))
    names = sorted({s.name for s in SCENARIOS})
    parser.add_argument(
        "--scenarios",
        default=",".join(names),
        help=f"a quicker partial run: some of {','.join(names)} (the RSS run needs objects_10k)",
    )
    args = parser.parse_args()
    args.scenarios = set(args.scenarios.split(","))
    if not args.scenarios <= set(names):
        raise SystemExit(f"--scenarios: some of {','.join(names)}")
    bounded = 1 <= args.connections <= 256 and 0 < args.seconds <= 120 and 1 <= args.rounds <= 15
    if not bounded or not 0 < args.batch_seconds <= 120:
        raise SystemExit("keep the run bounded: connections 1-256, seconds ≤ 120, rounds ≤ 15")
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: command -v wrk || apt-get install -y wrk")
    with tempfile.TemporaryDirectory(prefix="gradecast-bench-") as tmp:
        result = run(args, Path(tmp))
    print(f"client (wrk) CPU: at most {result['client_cpu_share_max']:.0%} of a core")
    for name, value in result["targets"].items():
        print(f"{name:28} {value}   (target {result['goals'][name]})")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
