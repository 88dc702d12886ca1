"""CPU of one 10,000-pupil /predict in-process, step by step: the service functions the route
calls (parse_json_request, json_batch, predict, render_json) on the bodies and the version
of bench/predict.py, without HTTP, so that a change to one step is seen on its own.

Each figure is the median of ``--repeats`` runs, in ms of this process's CPU
(time.process_time); run it next to the version it is compared with, alternating.

Run:  PYTHONPATH=$PWD .venv/bin/python bench/predict_steps.py [--repeats 21]
"""

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from predict import FEATURES, THETA, bodies  # bench/predict.py, next to this script

from app.services.answers import render_json
from app.services.batches import json_batch, parse_json_request, typed_json_batch
from app.services.predict import VersionSnapshot, predict

# As bench/predict.py registers it: a hand-set σ, so the answer has an interval.
SNAPSHOT = VersionSnapshot(
    model="concours",
    version=1,
    features=tuple(FEATURES),
    target="concours",
    grade_min=0.0,
    grade_max=20.0,
    intercept=THETA[0],
    theta=np.asarray(THETA),
    interval_design=None,
    residual_std=1.2,
    n_train=500,
    feature_min=None,
    feature_max=None,
    trained_at="2026-12-03T00:00:00Z",
    cohort_id=None,
)
MAX_ROWS = 100_000


def steps(body: bytes, *, full: bool, typed: bool = True) -> dict[str, float]:
    """Seconds of CPU of each step of one request."""
    times: dict[str, float] = {}

    def timed(name: str, step: Callable[[], Any]) -> Any:
        started = time.process_time()
        result = step()
        times[name] = time.process_time() - started
        return result

    # As the route reads a body over 64 KB: typed by the version's features when it can be.
    request = timed("parse", lambda: parse_json_request(body, MAX_ROWS, typed=typed))
    batch = timed(
        "batch",
        lambda: (
            (typed_json_batch(SNAPSHOT, request, MAX_ROWS) if request.unread else None)
            or json_batch(SNAPSHOT, request)
        ),
    )
    result = timed("predict", lambda: predict(SNAPSHOT, batch.values, full=full))
    timed("render", lambda: render_json(SNAPSHOT, batch, result, full=full))
    times["total"] = sum(times.values())
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=21)
    args = parser.parse_args()
    written = bodies()
    # The forms of bench/predict.py's scenarios, objects with every field and columns with
    # fields=prediction, and the other field of each, to see what the body's form costs
    # and what the interval and the contributions do.
    forms = (("objects", True), ("objects", False), ("columns", False), ("columns", True))
    for name, full in forms:
        steps(written[name], full=full)  # warm: templates, caches
        runs = [steps(written[name], full=full) for _ in range(args.repeats)]
        medians = {key: statistics.median(run[key] for run in runs) * 1e3 for key in runs[0]}
        figures = "  ".join(f"{key} {ms:6.2f}" for key, ms in medians.items())
        print(f"{name:8} {'all' if full else 'prediction':10} ms CPU: {figures}")


if __name__ == "__main__":
    main()
