"""End-to-end test of compose.yaml (`make compose-test`, CI), with podman-compose.

1. builds the PostgreSQL and gradecast images locally (scripts/make-base-image.sh's Debian
   base, the host's CA mounted for pip only) and brings the stack up under a project name
   of its own, on a free loopback port;
2. runs the README's walk-through against it (tests/walkthrough.py reads it from README.md);
3. SIGKILLs the worker container that runs a job: the other worker finishes it, with one
   model version;
4. restarts the API's two uvicorn processes one at a time (SIGHUP) twice, under a steady
   /predict load: no request may fail; /metrics adds up both processes;
5. `down` and `up` again: the cohort, the version and the key survive on the volume.

Prints one PASS/FAIL line per check and the time of each stage; exits non-zero on a failure.
Environment: PODMAN_RUNTIME (runc), HOST_CA, BASE_IMAGE, KEEP=1 (leave the stack up).
"""

import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.walkthrough import run_walkthrough  # noqa: E402

PODMAN_RUNTIME = os.environ.get("PODMAN_RUNTIME", "runc")
HOST_CA = Path(os.environ.get("HOST_CA", "/etc/ssl/certs/ca-certificates.crt"))
BASE_IMAGE = os.environ.get("BASE_IMAGE", "localhost/debian-python:bookworm")
PROJECT = f"gradecast-ct-{os.getpid()}"
GRADECAST_IMAGE = "localhost/gradecast:compose-test"
POSTGRES_IMAGE = "localhost/gradecast-postgres:compose-test"
LEASE_SECONDS = 5
LOAD_THREADS = 4
PREDICT_BODY = {
    "model": "course",
    "students": [{"id": "n1", "maths": 13, "info": 14, "francais": 11}],
}


class Failed(Exception):
    """A check after which nothing else can be checked."""


class Run:
    def __init__(self) -> None:
        self.passed = 0
        self.failed = 0
        self.timings: list[tuple[str, float]] = []
        self.started = time.monotonic()

    def check(self, ok: bool, what: str) -> bool:
        if ok:
            self.passed += 1
            print(f"PASS: {what}", flush=True)
        else:
            self.failed += 1
            print(f"FAIL: {what}", flush=True)
        return ok

    def require(self, ok: bool, what: str) -> None:
        if not self.check(ok, what):
            raise Failed(what)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        print(f"==> {name}", flush=True)
        started = time.monotonic()
        try:
            yield
        finally:
            self.timings.append((name, time.monotonic() - started))

    def summary(self) -> int:
        print()
        for name, seconds in self.timings:
            print(f"    {name}: {seconds:.0f} s")
        print(f"    total: {time.monotonic() - self.started:.0f} s")
        print(f"compose-test: {self.passed} passed, {self.failed} failed")
        return 1 if self.failed else 0


def sh(*args: str, env: dict[str, str] | None = None, check: bool = True) -> str:
    done = subprocess.run(
        args, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    if check and done.returncode != 0:
        print(done.stdout[-4000:])
        raise Failed(f"{' '.join(args[:3])}… exited with {done.returncode}")
    return done.stdout


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Stack:
    """The compose project under test, driven through podman-compose."""

    def __init__(self, work: Path) -> None:
        self.port = free_port()
        self.key = f"gc_composetest_{secrets.token_hex(16)}"
        self.metrics_token = secrets.token_hex(16)
        self.api = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "POSTGRES_PASSWORD": secrets.token_hex(16),
            "GRADECAST_BOOTSTRAP_ADMIN_KEY": self.key,
            "GRADECAST_METRICS_TOKEN": self.metrics_token,
            "GRADECAST_PORT": str(self.port),
            "GRADECAST_IMAGE": GRADECAST_IMAGE,
            "POSTGRES_IMAGE": POSTGRES_IMAGE,
            "GRADECAST_JOB_LEASE_SECONDS": str(LEASE_SECONDS),
        }
        if PODMAN_RUNTIME == "runc":
            # crun fails on these cgroup v1 hosts: runc and explicit limits, for this run only.
            conf = work / "containers.conf"
            conf.write_text(
                "[containers]\n"
                'default_ulimits = ["nofile=20000:20000", "nproc=8192:8192"]\n'
                "[engine]\n"
                'runtime = "runc"\n'
            )
            self.env["CONTAINERS_CONF"] = str(conf)
        self.compose_bin = shutil.which("podman-compose") or str(
            Path(sys.executable).with_name("podman-compose")
        )

    def compose(self, *args: str, check: bool = True) -> str:
        return sh(self.compose_bin, "-p", PROJECT, *args, env=self.env, check=check)

    def podman(self, *args: str, check: bool = True) -> str:
        return sh("podman", *args, env=self.env, check=check)

    def container(self, service: str) -> str:
        return f"{PROJECT}_{service}_1"

    def client(self, key: str | None = None) -> httpx.Client:
        return httpx.Client(
            base_url=self.api,
            headers={"Authorization": f"Bearer {key or self.key}"},
            timeout=60,
        )

    def wait_ready(self, timeout: float = 180) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.api}/readyz", timeout=2).status_code == 200:
                    return True
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        return False

    def psql(self, query: str) -> str:
        return self.podman(
            "exec",
            self.container("db"),
            "psql",
            "-U",
            "gradecast",
            "-d",
            "gradecast",
            "-At",
            "-c",
            query,
        ).strip()

    def logs(self, service: str, lines: int = 40) -> str:
        return self.podman("logs", "--tail", str(lines), self.container(service), check=False)


def build_images(run: Run) -> None:
    if BASE_IMAGE.startswith("localhost/debian-python:"):
        subprocess.run(
            ["bash", str(ROOT / "scripts/make-base-image.sh")],
            env={**os.environ, "BASE_IMAGE": BASE_IMAGE},
            check=True,
        )
    common = ["podman", "--runtime", PODMAN_RUNTIME, "build", "--format", "docker"]
    common += ["--ulimit", "nofile=20000:20000", "--ulimit", "nproc=8192:8192"]
    common += ["--build-arg", f"BASE_IMAGE={BASE_IMAGE}"]
    ca = ["-v", f"{HOST_CA}:/run/host-ca.crt:ro", "--build-arg", "PIP_CERT=/run/host-ca.crt"]
    sh(*common, *(ca if HOST_CA.is_file() else []), "-t", GRADECAST_IMAGE, ".")
    run.check(True, f"image {GRADECAST_IMAGE} built from the Dockerfile")
    sh(*common, "-t", POSTGRES_IMAGE, "docker/postgres")
    run.check(True, f"image {POSTGRES_IMAGE} built from docker/postgres (Debian's postgresql)")


def start(run: Run, stack: Stack, what: str) -> None:
    started = time.monotonic()
    stack.compose("up", "-d")
    ready = stack.wait_ready()
    if not ready:
        print(stack.logs("api"))
    run.require(ready, f"{what}: /readyz answers 200 ({time.monotonic() - started:.0f} s)")


def check_stack(run: Run, stack: Stack) -> None:
    states = stack.podman(
        "ps",
        "-a",
        "--filter",
        f"label=io.podman.compose.project={PROJECT}",
        "--format",
        "{{.Names}} {{.State}}",
    )
    # podman 4.3 prints "Up 5 seconds ago" for a running container.
    running = {line.split()[0] for line in states.splitlines() if " Up " in f"{line} "}
    expected = {stack.container(s) for s in ("db", "api", "worker-1", "worker-2")}
    run.check(expected <= running, f"db, api and 2 workers running ({sorted(running)})")
    health = stack.podman("healthcheck", "run", stack.container("db"), check=False)
    run.check("unhealthy" not in health, "the database's healthcheck passes")
    for service in ("api", "worker-1", "worker-2"):
        result = subprocess.run(
            ["podman", "healthcheck", "run", stack.container(service)],
            env=stack.env,
            capture_output=True,
            text=True,
        )
        run.check(result.returncode == 0, f"the {service} healthcheck passes")
    config = stack.podman("image", "inspect", GRADECAST_IMAGE)
    run.check(
        stack.key not in config and stack.env["POSTGRES_PASSWORD"] not in config,
        "no secret in the image",
    )
    with stack.client() as client:
        response = client.get("/metrics")
        run.check(response.status_code == 401, "/metrics without the token: 401")
        response = client.get(
            "/metrics", headers={"Authorization": f"Bearer {stack.metrics_token}"}
        )
        run.check(response.status_code == 200, "/metrics with GRADECAST_METRICS_TOKEN: 200")
    worker_metrics = stack.podman(
        "exec",
        stack.container("worker-1"),
        "python",
        "-c",
        "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:9100/metrics').read().decode())",
    )
    run.check(
        "gradecast_job_outcomes_total" in worker_metrics,
        "worker-1 serves its job metrics on port 9100",
    )


def walkthrough(run: Run, stack: Stack) -> None:
    for attempt in (1, 2):
        result = run_walkthrough(ROOT / "README.md", api=stack.api, key=stack.key)
        ok = result.returncode == 0 and "12.54" in result.stdout and "13.58" in result.stdout
        if not ok:
            print(result.stdout[-3000:], result.stderr[-3000:])
        run.check(ok, f"README walk-through, run {attempt}: 12.54 and 13.58 predicted")


def synthetic_csv(n: int) -> bytes:
    rng = np.random.default_rng(7)
    grades = np.clip(rng.normal(11, 3, size=(n, 3)), 0, 20)
    target = np.clip(grades @ [0.5, 0.4, 0.1] + rng.normal(0, 1, n), 0, 20)
    lines = ["id,maths,info,francais,concours"]
    lines += [
        f"p{i},{a:.2f},{b:.2f},{c:.2f},{y:.2f}"
        for i, ((a, b, c), y) in enumerate(zip(grades, target, strict=True))
    ]
    return ("\n".join(lines) + "\n").encode()


def poll(
    client: httpx.Client, job_id: str, done: Callable[[dict[str, Any]], bool], timeout: float
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job: dict[str, Any] = client.get(f"/jobs/{job_id}").json()
        if done(job) or time.monotonic() > deadline:
            return job
        time.sleep(0.1)


def kill_a_worker(run: Run, stack: Stack) -> None:
    with stack.client() as client:
        response = client.post(
            "/cohorts",
            params={"name": f"kill-{PROJECT}"},
            headers={"Content-Type": "text/csv"},
            content=synthetic_csv(20_000),
        )
        run.require(
            response.status_code == 201, f"20,000-pupil cohort uploaded ({response.status_code})"
        )
        response = client.post(
            "/jobs",
            json={
                "cohort_id": response.json()["id"],
                "model": "killed",
                "algorithm": "sgd",
                "epochs": 300,
                "batch_size": 1,
                "shuffle": True,
                "learning_rate": 1e-5,
                "record_every": 1000,
            },
        )
        run.require(response.status_code == 202, "long SGD job queued")
        job_id = response.json()["id"]
        job = poll(client, job_id, lambda j: j["progress"]["steps_done"] > 0, 60)
        run.require(job["status"] == "running", "the job runs")
        holder = stack.psql(f"SELECT worker_id FROM jobs WHERE id = '{job_id}'")
        hostnames = {
            stack.podman("inspect", "-f", "{{.Config.Hostname}}", stack.container(s)).strip(): s
            for s in ("worker-1", "worker-2")
        }
        victim = hostnames.get(holder.split(":")[0], "")
        run.require(bool(victim), f"the job is held by {victim} ({holder})")
        stack.podman("kill", "--signal", "KILL", stack.container(victim))
        killed_at = time.monotonic()
        job = poll(
            client, job_id, lambda j: j["status"] in {"succeeded", "failed", "cancelled"}, 300
        )
        # A finished job keeps no worker_id: the workers' logs say who finished it.
        finisher = [
            s for s in ("worker-1", "worker-2") if succeeded_in_logs(stack.logs(s, 200), job_id)
        ]
        run.check(
            job["status"] == "succeeded",
            f"the job succeeded {time.monotonic() - killed_at:.0f} s after the kill "
            f"(attempts {job['attempts']})",
        )
        run.check(
            len(finisher) == 1 and finisher[0] != victim,
            f"finished by the other worker ({finisher})",
        )
        versions = stack.psql(f"SELECT count(*) FROM model_versions WHERE job_id = '{job_id}'")
        run.check(versions == "1", f"one model version for the job ({versions})")
    stack.compose("up", "-d", victim)


def succeeded_in_logs(logs: str, job_id: str) -> bool:
    """Whether a worker's JSON log lines say it finished the job (whatever the spacing)."""
    for line in logs.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if (
            isinstance(record, dict)
            and record.get("message") == "job succeeded"
            and record.get("job") == job_id
        ):
            return True
    return False


class Load:
    """Threads that POST /predict as fast as they can, each on its own keep-alive client."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.stop = threading.Event()
        self.sent = 0
        self.failures: list[str] = []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._loop) for _ in range(LOAD_THREADS)]

    def _loop(self) -> None:
        with self.stack.client() as client:
            while not self.stop.is_set():
                try:
                    response = client.post("/predict", json=PREDICT_BODY)
                    failure = (
                        None if response.status_code == 200 else f"HTTP {response.status_code}"
                    )
                except httpx.HTTPError as exc:
                    failure = f"{type(exc).__name__}: {exc}"
                with self.lock:
                    self.sent += 1
                    if failure is not None:
                        self.failures.append(failure)

    def __enter__(self) -> "Load":
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join()


def server_processes(stack: Stack) -> set[str]:
    """The PIDs of the API's uvicorn worker processes (the supervisor's children)."""
    top = stack.podman("top", stack.container("api"), "pid", "ppid", "args")
    rows = [line.split(None, 2) for line in top.splitlines()[1:]]
    supervisor = next(pid for pid, _, args in rows if "gradecast serve" in args)
    return {pid for pid, ppid, args in rows if ppid == supervisor and "spawn_main" in args}


def rolling_restart(run: Run, stack: Stack) -> None:
    before = server_processes(stack)
    run.require(len(before) == 2, f"the API runs 2 uvicorn processes ({sorted(before)})")
    with Load(stack) as load:
        time.sleep(2)
        for _ in range(2):
            old = server_processes(stack)
            stack.podman("kill", "--signal", "HUP", stack.container("api"))
            deadline = time.monotonic() + 90
            while server_processes(stack) & old or len(server_processes(stack)) != 2:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            time.sleep(2)
    after = server_processes(stack)
    run.check(
        not (after & before) and len(after) == 2,
        f"both processes replaced, one at a time ({sorted(before)} → {sorted(after)})",
    )
    run.check(
        load.sent > 100 and not load.failures,
        f"rolling restart under load: {load.sent} requests, {len(load.failures)} failed"
        + (f" (first: {load.failures[0]})" if load.failures else ""),
    )
    # Each process counts its own requests; a scrape of either adds both up.
    with stack.client(stack.metrics_token) as client:
        text = client.get("/metrics").text
    counted = sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("gradecast_http_requests_total{") and 'route="/predict"' in line
    )
    run.check(
        counted >= load.sent, f"/metrics counts {counted:.0f} /predict requests, all processes"
    )


def survive_down_up(run: Run, stack: Stack) -> None:
    with stack.client() as client:
        cohorts = client.get("/cohorts").json()["count"]
        versions = client.get("/models/concours/versions").json()["count"]
    stack.compose("down", "-t", "40")
    run.check(
        PROJECT + "_pgdata" in stack.podman("volume", "ls", "--format", "{{.Name}}"),
        "the pgdata volume outlives `down`",
    )
    start(run, stack, "up again")
    with stack.client() as client:
        run.check(
            client.get("/cohorts").json()["count"] == cohorts,
            f"after down/up: {cohorts} cohorts, as before",
        )
        run.check(
            client.get("/models/concours/versions").json()["count"] == versions,
            f"after down/up: {versions} versions of concours, as before",
        )
        response = client.post("/predict", json={**PREDICT_BODY, "model": "concours"})
        run.check(
            response.status_code == 200 and "13.58" in response.text,
            "after down/up: concours still predicts 13.58",
        )


def main() -> int:
    run = Run()
    work = Path(tempfile.mkdtemp(prefix="gradecast-compose-test."))
    stack = Stack(work)
    try:
        with run.stage("images"):
            build_images(run)
        with run.stage("up"):
            start(run, stack, "stack up")
            check_stack(run, stack)
        with run.stage("README walk-through"):
            walkthrough(run, stack)
        with run.stage("SIGKILL a worker"):
            kill_a_worker(run, stack)
        with run.stage("rolling restart"):
            rolling_restart(run, stack)
        with run.stage("down and up"):
            survive_down_up(run, stack)
    except (Failed, subprocess.CalledProcessError, httpx.HTTPError) as exc:
        run.check(False, f"stopped: {exc}")
        for service in ("api", "worker-1", "worker-2", "db"):
            print(f"---- {service} ----\n{stack.logs(service)}")
    finally:
        if os.environ.get("KEEP") != "1":
            stack.compose("down", "-v", "-t", "5", check=False)
        shutil.rmtree(work, ignore_errors=True)
    return run.summary()


if __name__ == "__main__":
    sys.exit(main())
