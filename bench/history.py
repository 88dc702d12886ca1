"""The loss history of the course's SGD on a national cohort: stored and read back in well
under the time it took to train.

1,000,000 synthetic pupils × 3 grades; the course's SGD (batch 10, 5 epochs, no shuffle,
λ = 1e-4) records the full risk at all 500,000 steps. Then, through the service's own code
on a real SQLite file (WAL, as the server):

  train   app.engine.fit, collecting the history chunks as the worker does;
  store   the points packed and written as loss chunks in one transaction (the worker
          writes them in the same way, a heartbeat at a time, while the job runs);
  read    all chunks read back and unpacked (read_raw); GET /jobs/{id}/loss's work: that,
          thinned to 2,000 points and serialised to JSON; and the full 500,001 points as JSON.

Medians of --repeat runs. Run:  .venv/bin/python bench/history.py [--repeat 3]
The last line is one JSON object.
"""

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import orjson

from app.db.migrations import upgrade_to_head
from app.db.models import Cohort, Job, JobStatus, Organisation
from app.db.session import Database, create_db_engine, write_session
from app.engine import History, TrainingConfig, fit, thin
from app.services import jobs as job_service


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    X = rng.uniform(0, 20, size=(args.rows, 3))
    y = X @ np.array([0.48, 0.53, -0.01]) + rng.normal(0, 0.4, args.rows)
    config = TrainingConfig(algorithm="sgd", learning_rate=1e-4, epochs=5, batch_size=10)

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'history.db'}"
        upgrade_to_head(url)
        database = Database.from_engine(create_db_engine(url))
        timings: dict[str, list[float]] = {
            "train": [],
            "store": [],
            "read_raw": [],
            "read_2000": [],
            "read_all": [],
        }
        points = 0
        for _ in range(args.repeat):
            chunks: list[History] = []
            start = time.perf_counter()
            fit(X, y, config, on_history=chunks.append)
            timings["train"].append(time.perf_counter() - start)
            columns = job_service.loss_columns(chunks)
            points = len(columns[0])

            with write_session(database) as session:
                organisation = Organisation(name=f"bench-{time.monotonic_ns()}")
                session.add(organisation)
                session.flush()
                cohort = Cohort(
                    organisation_id=organisation.id,
                    name="c",
                    features=["a", "b", "c"],
                    feature_labels=["a", "b", "c"],
                    target="y",
                    target_label="y",
                    grade_min=0,
                    grade_max=20,
                    n_students=args.rows,
                    has_ids=False,
                    stats={},
                )
                session.add(cohort)
                session.flush()
                job = Job(
                    organisation_id=organisation.id,
                    cohort_id=cohort.id,
                    model_name="m",
                    algorithm="sgd",
                    params={},
                    activate="never",
                    status=JobStatus.running,
                )
                session.add(job)
                session.flush()
                job_id = job.id

            start = time.perf_counter()
            with write_session(database) as session:
                for seq, first in enumerate(range(0, points, 50_000)):
                    job_service.write_loss_chunk(
                        session, job_id, seq, [c[first : first + 50_000] for c in columns]
                    )
            timings["store"].append(time.perf_counter() - start)

            start = time.perf_counter()
            with database.reads() as session:
                raw = job_service.read_loss(session, job_id)
            timings["read_raw"].append(time.perf_counter() - start)
            assert raw.shape == (points, len(columns))

            for label, max_points in (("read_2000", 2000), ("read_all", None)):
                start = time.perf_counter()
                with database.reads() as session:
                    read = thin(job_service.read_loss(session, job_id), max_points)
                body = orjson.dumps(
                    {
                        "points": [
                            dict(
                                zip(
                                    ("step", "epoch", "train_loss", "val_loss", "grad_norm"),
                                    row,
                                    strict=True,
                                )
                            )
                            for row in read.tolist()
                        ]
                    }
                )
                timings[label].append(time.perf_counter() - start)
                assert len(body) > 0
            assert np.array_equal(read, np.column_stack(columns), equal_nan=True)
        database.engine.dispose()

    medians = {k: statistics.median(v) for k, v in timings.items()}
    print(f"{points} history points, medians of {args.repeat} runs")
    for label, seconds in medians.items():
        print(f"  {label:10s} {seconds:8.3f} s   ({seconds / medians['train']:.2f}× training)")
    print(
        json.dumps(
            {
                "points": points,
                "train_seconds": round(medians["train"], 4),
                "store_seconds": round(medians["store"], 4),
                "read_raw_seconds": round(medians["read_raw"], 4),
                "read_2000_seconds": round(medians["read_2000"], 4),
                "read_all_seconds": round(medians["read_all"], 4),
                "store_over_train": round(medians["store"] / medians["train"], 3),
                "read_2000_over_train": round(medians["read_2000"] / medians["train"], 3),
            }
        )
    )


if __name__ == "__main__":
    main()
