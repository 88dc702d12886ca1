"""End to end through HTTP, as a user sees it: upload a national cohort, train, read back.

1,000,000 pupils × 3 grades (bench/upload.py's CSV: ``;``, decimal commas, CRLF, INE-like
ids, ~31 MB). Against the real server (``gradecast migrate`` then ``gradecast serve``,
SQLite in a temporary directory, one in-process worker) each round does:

  naive    the course's SGD written the obvious way in numpy (bench/train.py's loop_sgd:
           batch 10, 5 epochs, no shuffle, λ = 1e-4) on the same grades, in this process;
  upload   POST /cohorts with the CSV (text/csv), the wall time of the request, and the
           server's peak RSS during it (VmHWM, reset before the upload when allowed) and
           what the upload added to the RSS it found (the target: at most 4x the file);
  jobs     POST /jobs, then GET /jobs/{id}?wait=30, answered as soon as the job ends: the
           wall time from the POST to the answer that says ``succeeded`` ("202 → succeeded"), for
           closed_form, the course's SGD (record_every 1000, and 1: 500,001 points) and
           gd (1,000 iterations, λ = 1e-3);
  history  GET /jobs/{id}/loss of the 500,001-point job as CSV (format=csv), as packed
           float64 columns (format=f64) and as JSON (the whole history, then max_points=2000).

BLAS runs on one thread in both processes (OPENBLAS_NUM_THREADS=1, as bench/train.py), so
the naive loop and the server's engine are compared on equal terms.

Run:  .venv/bin/python bench/e2e.py [--rows 1000000] [--rounds 3]
The last line is one JSON object: medians of the rounds, and every ratio (a job against the
naive loop: the median of each round's own ratio, the two run moments apart).
"""

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import io
import json
import secrets
import statistics
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from train import COURSE_SGD, loop_sgd
from upload import (
    MIB,
    free_port,
    make_csv,
    reset_hwm,
    rss_mb,
    server_process,
    start_server,
    vm_hwm_mb,
    wait_until_up,
)

COURSE = {"learning_rate": 1e-4, "epochs": 5, "batch_size": 10, "shuffle": False}
JOBS: dict[str, dict[str, Any]] = {
    "closed_form": {"algorithm": "closed_form"},
    "sgd": {"algorithm": "sgd", **COURSE, "record_every": 1000},
    "sgd_every_step": {"algorithm": "sgd", **COURSE, "record_every": 1},
    "gd": {"algorithm": "gd", "learning_rate": 1e-3, "iterations": 1000},
}
# GET /jobs/{id}?wait=: answered as soon as the job ends (no polling loop beside the job).
WAIT_SECONDS = 30


def grades_of(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    """The CSV's grades as the naive loop gets them: X (n, 3) and y."""
    table = np.loadtxt(
        io.StringIO(data.decode().replace(",", ".")),
        delimiter=";",
        skiprows=1,
        usecols=(1, 2, 3, 4),
    )
    return np.ascontiguousarray(table[:, :3]), np.ascontiguousarray(table[:, 3])


def naive_seconds(X: np.ndarray, y: np.ndarray) -> float:
    started = time.perf_counter()
    loop_sgd(X, y, COURSE_SGD)
    return time.perf_counter() - started


def upload(
    client: httpx.Client, data: bytes, name: str, pid: int
) -> tuple[float, float, float, str]:
    """(seconds, peak RSS in MB during the upload, RSS just before it, cohort id)."""
    before = rss_mb(pid)
    resettable = reset_hwm(pid)
    started = time.perf_counter()
    response = client.post(
        "/cohorts",
        params={"name": name},
        content=data,
        headers={"Content-Type": "text/csv; charset=utf-8"},
    )
    elapsed = time.perf_counter() - started
    if response.status_code != 201:
        raise RuntimeError(f"upload failed: {response.status_code} {response.text[:300]}")
    peak = vm_hwm_mb(pid) if resettable else float("nan")
    return elapsed, peak, before, str(response.json()["id"])


def server_split(job: dict[str, Any]) -> tuple[float, float]:
    """(queued, running) seconds as the server recorded them: created → started → finished."""
    created, started, finished = (
        datetime.fromisoformat(job[k]) for k in ("created_at", "started_at", "finished_at")
    )
    return (started - created).total_seconds(), (finished - started).total_seconds()


def run_job(client: httpx.Client, cohort_id: str, options: dict[str, Any]) -> tuple[float, str]:
    """Seconds from POST /jobs to the first GET that says succeeded, and the job's id; the
    server's split of that time (queued, running) is printed."""
    body = {"cohort_id": cohort_id, "model": "e2e", "activate": "never", **options}
    started = time.perf_counter()
    created = client.post("/jobs", json=body)
    if created.status_code != 202:
        raise RuntimeError(f"job refused: {created.status_code} {created.text[:300]}")
    job_id = created.json()["id"]
    while True:
        job = client.get(f"/jobs/{job_id}", params={"wait": WAIT_SECONDS}).json()
        status = job["status"]
        if status == "succeeded":
            wall = time.perf_counter() - started
            queued, running = server_split(job)
            print(
                f"    {options['algorithm']}: wall {wall:.3f} s = queued {queued:.3f} + "
                f"running {running:.3f} + {wall - queued - running:.3f} HTTP"
            )
            return wall, job_id
        if status in ("failed", "cancelled"):
            raise RuntimeError(f"job {options} ended {status}")


def read_history(client: httpx.Client, job_id: str) -> dict[str, tuple[float, int]]:
    """Per format: (seconds, bytes) of reading the whole history once."""
    timings: dict[str, tuple[float, int]] = {}
    for label, params in (
        ("csv", {"format": "csv"}),
        ("f64", {"format": "f64"}),
        ("json", {}),
        ("json_2000", {"max_points": "2000"}),
    ):
        started = time.perf_counter()
        response = client.get(f"/jobs/{job_id}/loss", params=params)
        elapsed = time.perf_counter() - started
        response.raise_for_status()
        timings[label] = (elapsed, len(response.content))
    return timings


def median(values: list[float]) -> float:
    return round(statistics.median(values), 4)


def run(rows: int, rounds: int) -> dict[str, Any]:
    """Long because it is the whole scenario in order: server up, rounds, medians, ratios."""
    data = make_csv(rows)
    X, y = grades_of(data)
    print(f"CSV: {rows} pupils, {len(data) / MIB:.1f} MiB")
    times: dict[str, list[float]] = {
        "naive_sgd": [],
        "upload": [],
        "upload_peak_rss_mb": [],
        "upload_rss_before_mb": [],
        "upload_rss_growth_mb": [],
    }
    for label in (*JOBS, "history_csv", "history_f64", "history_json", "history_json_2000"):
        times[label] = []
    sizes: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="gradecast-e2e-") as tmp:
        port = free_port()
        admin_key = "gc_" + secrets.token_urlsafe(32)
        process = start_server(Path(tmp), port, admin_key, workers=1)
        try:
            url = f"http://127.0.0.1:{port}"
            wait_until_up(url, process)
            pid = server_process(process).pid
            headers = {"Authorization": f"Bearer {admin_key}"}
            with httpx.Client(base_url=url, headers=headers, timeout=300) as client:
                client.get("/cohorts").raise_for_status()
                idle = rss_mb(pid)
                _, _, _, warm = upload(client, data, "warm-up", pid)
                run_job(client, warm, JOBS["closed_form"])
                for i in range(rounds):
                    times["naive_sgd"].append(naive_seconds(X, y))
                    seconds, peak, before, cohort_id = upload(client, data, f"national-{i}", pid)
                    times["upload"].append(seconds)
                    times["upload_peak_rss_mb"].append(peak)
                    times["upload_rss_before_mb"].append(before)
                    times["upload_rss_growth_mb"].append(peak - before)
                    history_job = ""
                    for label, options in JOBS.items():
                        seconds, job_id = run_job(client, cohort_id, options)
                        times[label].append(seconds)
                        if label == "sgd_every_step":
                            history_job = job_id
                    for label, (seconds, size) in read_history(client, history_job).items():
                        times[f"history_{label}"].append(seconds)
                        sizes[label] = size
                    print(
                        f"  round {i}: "
                        + ", ".join(f"{k} {v[-1]:.3f}" for k, v in times.items() if v)
                    )
                    # Keep the database to the size of one cohort, as a user would.
                    client.delete(f"/cohorts/{cohort_id}").raise_for_status()
        finally:
            process.terminate()
            process.wait(timeout=30)

    result: dict[str, Any] = {
        "rows": rows,
        "csv_mb": round(len(data) / MIB, 2),
        "rounds": rounds,
        "server_idle_rss_mb": round(idle, 1),
        "history_bytes": sizes,
    }
    for label, values in times.items():
        result[f"{label}_seconds" if "rss" not in label else label] = median(values)
        result[f"{label}_all"] = [round(v, 4) for v in values]

    def over_naive(job: str) -> float:
        """Median of the rounds' own ratios: each pairs a loop and a job run moments apart."""
        pairs = zip(times["naive_sgd"], times[job], strict=True)
        return round(statistics.median(naive / wall for naive, wall in pairs), 2)

    result["ratios"] = {
        "naive_over_sgd_job": over_naive("sgd"),
        "naive_over_sgd_every_step_job": over_naive("sgd_every_step"),
        "naive_over_gd_job": over_naive("gd"),
        "naive_over_closed_form_job": over_naive("closed_form"),
        "upload_over_3s": round(result["upload_seconds"] / 3.0, 3),
        # The target: what an upload adds to the server's RSS, at most 4x the file.
        "upload_rss_growth_over_file": round(result["upload_rss_growth_mb"] / result["csv_mb"], 2),
        "upload_peak_rss_over_file": round(result["upload_peak_rss_mb"] / result["csv_mb"], 2),
        "closed_form_over_0_3s": round(result["closed_form_seconds"] / 0.3, 3),
        "history_csv_over_0_3s": round(result["history_csv_seconds"] / 0.3, 3),
        "history_f64_over_0_3s": round(result["history_f64_seconds"] / 0.3, 3),
    }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    result = run(args.rows, max(1, args.rounds))
    print()
    print(f"medians of {result['rounds']} rounds, {result['rows']:,} pupils")
    for key, value in result.items():
        if key.endswith("_seconds"):
            print(f"  {key[: -len('_seconds')]:20s} {value:8.3f} s")
    print(f"  upload peak RSS      {result['upload_peak_rss_mb']:8.1f} MB")
    print(f"  RSS before upload    {result['upload_rss_before_mb']:8.1f} MB")
    print(f"  upload RSS growth    {result['upload_rss_growth_mb']:8.1f} MB")
    for key, value in result["ratios"].items():
        print(f"  {key:32s} {value}")
    print(json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    main()
