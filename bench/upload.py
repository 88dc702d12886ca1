"""Upload speed of a national-size cohort: POST /cohorts (CSV) against a csv + sqlite3 floor.

Generates a realistic 100,000-pupil CSV the way French exports write it (fixed seed,
``id;Maths;Info;Français;Concours``, ``;`` separators, decimal commas, CRLF, ~3 MB), then:

  floor   csv.reader over the decoded text + sqlite3 ``executemany`` of
          (cohort_id, row_index, id, maths, info, francais, concours) tuples into a fresh
          file database in WAL mode (synchronous=NORMAL, as the server), one transaction.
  upload  the real server (``gradecast migrate`` then ``gradecast serve``, GRADECAST_WORKERS=0,
          a temporary data directory, a random bootstrap admin key) as a subprocess; the
          file is POSTed with httpx over loopback (Content-Type text/csv), a distinct
          cohort name per repetition; the wall time of the request is measured.

Floor and upload runs alternate, so that noise from other processes hits both alike.
Peak memory is the server process's RSS high-water mark (VmHWM): read before the first
upload and after the last; the high-water mark is also reset before each upload
(``/proc/<pid>/clear_refs``, when the kernel allows it) to give each upload's own peak.

Run:  .venv/bin/python bench/upload.py [--rows 100000] [--repeat 5]
The last line is one JSON object (upload_seconds, floor_seconds, ratio, server_peak_rss_mb, …).
"""

import argparse
import csv
import io
import json
import os
import secrets
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
HEADER = ("id", "Maths", "Info", "Français", "Concours")
MIB = 1024 * 1024


def make_csv(rows: int, seed: int = 20240601) -> bytes:
    """Grades on 0–20 with two decimals at most, correlated like real marks; INE-like ids."""
    rng = np.random.default_rng(seed)
    level = rng.normal(11.0, 3.0, rows)
    grades = np.column_stack(
        [
            level + rng.normal(0.0, 2.0, rows),
            level + rng.normal(0.5, 2.5, rows),
            level + rng.normal(-0.5, 2.0, rows),
        ]
    )
    concours = grades @ np.array([0.45, 0.25, 0.2]) + 1.0 + rng.normal(0.0, 1.5, rows)
    table = np.clip(np.column_stack([grades, concours]), 0.0, 20.0)
    # Marks are given to the quarter point, the exam to the hundredth.
    table[:, :3] = np.round(table[:, :3] * 4) / 4
    table[:, 3] = np.round(table[:, 3], 2)
    ids = rng.choice(10**9, size=rows, replace=False)
    out = io.StringIO()
    out.write(";".join(HEADER) + "\r\n")
    for ident, row in zip(ids.tolist(), table.tolist(), strict=True):
        cells = [f"{v:g}".replace(".", ",") for v in row]
        out.write(f"{ident:09d}AB;" + ";".join(cells) + "\r\n")
    return out.getvalue().encode("utf-8")


def floor_once(data: bytes, db_path: Path) -> float:
    """csv + sqlite3, the least any upload must do: parse and store every row, once."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db_path}{suffix}").unlink(missing_ok=True)
    setup = sqlite3.connect(db_path)
    setup.execute("PRAGMA journal_mode=WAL")
    setup.execute(
        "CREATE TABLE students (cohort_id TEXT, row_index INTEGER, id TEXT, maths REAL,"
        " info REAL, francais REAL, concours REAL, PRIMARY KEY (cohort_id, row_index))"
    )
    setup.commit()
    setup.close()

    started = time.perf_counter()
    connection = sqlite3.connect(db_path, isolation_level=None)
    connection.execute("PRAGMA synchronous=NORMAL")
    text = data.decode("utf-8-sig")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=";")
    next(reader)
    cohort_id = uuid.uuid4().hex
    rows = [
        (
            cohort_id,
            i,
            ident,
            float(m.replace(",", ".")),
            float(inf.replace(",", ".")),
            float(fr.replace(",", ".")),
            float(c.replace(",", ".")),
        )
        for i, (ident, m, inf, fr, c) in enumerate(reader)
    ]
    connection.execute("BEGIN")
    connection.executemany("INSERT INTO students VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
    connection.execute("COMMIT")
    connection.close()
    elapsed = time.perf_counter() - started
    assert len(rows) == data.count(b"\n") - 1
    return elapsed


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_server(
    data_dir: Path, port: int, admin_key: str, workers: int = 0
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "GRADECAST_DATA_DIR": str(data_dir),
        "GRADECAST_BOOTSTRAP_ADMIN_KEY": admin_key,
        "GRADECAST_WORKERS": str(workers),
        "GRADECAST_LOG_LEVEL": "WARNING",
    }
    env.pop("GRADECAST_DATABASE_URL", None)
    subprocess.run([str(BIN / "gradecast"), "migrate"], cwd=ROOT, env=env, check=True)
    return subprocess.Popen(
        [str(BIN / "gradecast"), "serve", "--port", str(port)], cwd=ROOT, env=env
    )


def wait_until_up(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with code {process.returncode}")
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError("the server did not become ready in 60 s")


def server_process(process: subprocess.Popen[bytes]) -> psutil.Process:
    """The Python process that serves (the console script may exec or spawn it)."""
    proc = psutil.Process(process.pid)
    children = proc.children(recursive=True)
    return children[-1] if children and "python" in children[-1].name() else proc


def vm_hwm_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/<pid>/status")


def reset_hwm(pid: int) -> bool:
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def rss_mb(pid: int) -> float:
    rss: int = psutil.Process(pid).memory_info().rss
    return rss / MIB


def upload_once(client: httpx.Client, data: bytes, name: str, rows: int) -> float:
    started = time.perf_counter()
    response = client.post(
        "/cohorts",
        params={"name": name},
        content=data,
        headers={"Content-Type": "text/csv; charset=utf-8"},
    )
    elapsed = time.perf_counter() - started
    if response.status_code != 201:
        raise RuntimeError(f"upload failed: {response.status_code} {response.text[:500]}")
    assert response.json()["n_students"] == rows
    return elapsed


def run(rows: int, repeat: int) -> dict[str, Any]:
    data = make_csv(rows)
    print(f"CSV: {rows} pupils, {len(data) / MIB:.2f} MiB, header {data[:40]!r}")
    with tempfile.TemporaryDirectory(prefix="gradecast-upload-") as tmp:
        floor_db = Path(tmp) / "floor.db"
        floor_once(data, floor_db)  # warm-up
        floors: list[float] = []

        data_dir = Path(tmp) / "server"
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        admin_key = "gc_" + secrets.token_urlsafe(32)
        process = start_server(data_dir, port, admin_key)
        try:
            wait_until_up(url, process)
            pid = server_process(process).pid
            headers = {"Authorization": f"Bearer {admin_key}"}
            uploads: list[float] = []
            peaks: list[float] = []
            with httpx.Client(base_url=url, headers=headers, timeout=300) as client:
                client.get("/cohorts").raise_for_status()  # key cached, session warm
                rss_idle = rss_mb(pid)
                hwm_before = vm_hwm_mb(pid)
                upload_once(client, data, "warm-up", rows)
                for i in range(repeat):
                    # Interleaved, so that load from other processes hits both alike.
                    floors.append(floor_once(data, floor_db))
                    resettable = reset_hwm(pid)
                    base = rss_mb(pid)
                    uploads.append(upload_once(client, data, f"national-{i}", rows))
                    peaks.append(vm_hwm_mb(pid) if resettable else float("nan"))
                    print(
                        f"  {i}: floor {floors[-1]:.3f} s, upload {uploads[-1]:.3f} s, "
                        f"rss before {base:.0f} MB, peak {peaks[-1]:.0f} MB"
                    )
                hwm_after = vm_hwm_mb(pid)
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    upload = statistics.median(uploads)
    floor = statistics.median(floors)
    peak = max(hwm_before, hwm_after, *[p for p in peaks if p == p])
    return {
        "rows": rows,
        "csv_mb": round(len(data) / MIB, 2),
        "repeat": repeat,
        "upload_seconds": round(upload, 4),
        "upload_seconds_all": [round(u, 4) for u in uploads],
        "floor_seconds": round(floor, 4),
        "floor_seconds_all": [round(f, 4) for f in floors],
        "ratio": round(upload / floor, 2),
        "server_peak_rss_mb": round(peak, 1),
        "server_upload_peak_rss_mb": round(statistics.median(peaks), 1) if peaks else None,
        "server_idle_rss_mb": round(rss_idle, 1),
        "server_hwm_before_mb": round(hwm_before, 1),
        "server_hwm_after_mb": round(hwm_after, 1),
        "server_hwm_delta_mb": round(hwm_after - hwm_before, 1),
        "upload_rows_per_second": round(rows / upload),
        "floor_rows_per_second": round(rows / floor),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    result = run(args.rows, max(1, args.repeat))

    print()
    print(f"{'':28}{'median s':>10}{'min s':>10}{'max s':>10}{'rows/s':>12}")
    for label, key in (("floor (csv + sqlite3)", "floor"), ("POST /cohorts (CSV)", "upload")):
        times = result[f"{key}_seconds_all"]
        print(
            f"{label:28}{result[f'{key}_seconds']:>10.3f}{min(times):>10.3f}{max(times):>10.3f}"
            f"{result[f'{key}_rows_per_second']:>12,}"
        )
    print(f"ratio upload / floor: {result['ratio']:.2f}× (target ≤ 3×)")
    print(
        f"server RSS: idle {result['server_idle_rss_mb']:.0f} MB, peak "
        f"{result['server_peak_rss_mb']:.0f} MB (per upload, median "
        f"{result['server_upload_peak_rss_mb']} MB; VmHWM before "
        f"{result['server_hwm_before_mb']:.0f} → after "
        f"{result['server_hwm_after_mb']:.0f} MB, delta "
        f"{result['server_hwm_delta_mb']:.0f} MB; target ≤ 300 MB)"
    )
    print(json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    main()
