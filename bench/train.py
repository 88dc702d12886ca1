"""Engine vs the straightforward numpy loops on 1,000,000 synthetic pupils × 3 grades.

    .venv/bin/python bench/train.py [--pupils N] [--repeats R]

Timings are wall-clock medians of R interleaved repeats (the machine may be shared and noisy,
so every variant sees the same conditions). Peak memory is measured with tracemalloc (numpy
reports its buffers to it) in a separate, untimed run of each engine fit, and compared with
the bytes of the data matrix X. The last line is one JSON object with the figures.

OpenBLAS runs on one thread unless OPENBLAS_NUM_THREADS is already set, for every variant
alike: on two shared cores its spinning worker threads slowed every phase of the engine
2-3x, and made the plain gd loop several times slower too. Set OPENBLAS_NUM_THREADS=2 to see
the threaded figures.
"""

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import json
import statistics
import time
import tracemalloc
from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

from app.engine import FitResult, TrainingConfig, fit

FloatArray = NDArray[np.float64]

COURSE_SGD = TrainingConfig(
    algorithm="sgd", learning_rate=1e-4, batch_size=10, epochs=5, shuffle=False
)
GD = TrainingConfig(algorithm="gd", learning_rate=1e-3, iterations=1000)


def make_pupils(n: int, seed: int = 2021) -> tuple[FloatArray, FloatArray]:
    """Grades in [0, 20]; concours ≈ 0.5 maths + 0.5 info + noise."""
    rng = np.random.default_rng(seed)
    X = np.clip(rng.normal(11.0, 3.5, size=(n, 3)), 0.0, 20.0)
    y = np.clip(0.5 * X[:, 0] + 0.5 * X[:, 1] + rng.normal(0.0, 1.0, size=n), 0.0, 20.0)
    return X, y


def loop_sgd(X: FloatArray, y: FloatArray, config: TrainingConfig) -> FloatArray:
    """The course's pseudo-code, written the obvious way; records nothing."""
    design = np.column_stack([np.ones(len(X)), X])
    theta = np.zeros(design.shape[1])
    rate, size = config.learning_rate, config.batch_size
    for _ in range(config.epochs):
        for b in range(0, len(y), size):
            Xb, yb = design[b : b + size], y[b : b + size]
            residual = Xb @ theta - yb
            theta -= rate * 2 / len(yb) * Xb.T @ residual
    return theta


def loop_gd(X: FloatArray, y: FloatArray, config: TrainingConfig) -> FloatArray:
    design = np.column_stack([np.ones(len(X)), X])
    theta = np.zeros(design.shape[1])
    for _ in range(config.iterations):
        residual = design @ theta - y
        theta -= config.learning_rate * 2 / len(y) * design.T @ residual
    return theta


def peak_bytes(run: Callable[[], object]) -> int:
    tracemalloc.start()
    try:
        run()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pupils", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    X, y = make_pupils(args.pupils)
    threads = os.environ["OPENBLAS_NUM_THREADS"]
    print(f"data: {len(y):,} pupils × {X.shape[1]} grades, X = {X.nbytes / 2**20:.0f} MiB")
    print(f"OPENBLAS_NUM_THREADS={threads}")

    results: dict[str, FitResult] = {}
    thetas: dict[str, FloatArray] = {}
    variants: dict[str, Callable[[], object]] = {
        "engine_sgd": lambda: results.__setitem__("sgd", fit(X, y, COURSE_SGD)),
        "loop_sgd": lambda: thetas.__setitem__("sgd", loop_sgd(X, y, COURSE_SGD)),
        "engine_gd": lambda: results.__setitem__("gd", fit(X, y, GD)),
        "loop_gd": lambda: thetas.__setitem__("gd", loop_gd(X, y, GD)),
    }
    try:
        from sklearn.linear_model import LinearRegression, SGDRegressor

        def sklearn_sgd() -> None:
            # Not the same algorithm (per-sample updates, its own schedule): a reference line.
            model = SGDRegressor(
                max_iter=COURSE_SGD.epochs,
                tol=None,
                shuffle=False,
                learning_rate="constant",
                eta0=COURSE_SGD.learning_rate,
                penalty=None,
                random_state=0,
            )
            model.fit(X, y)

        variants["sklearn_SGDRegressor"] = sklearn_sgd
        variants["sklearn_LinearRegression"] = lambda: LinearRegression().fit(X, y)
    except ImportError:
        print("scikit-learn not installed: no reference lines")
    variants["engine_closed_form"] = lambda: fit(X, y, TrainingConfig(algorithm="closed_form"))

    timings: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.repeats):
        for name, run in variants.items():
            started = time.perf_counter()
            run()
            timings[name].append(time.perf_counter() - started)
    medians = {name: statistics.median(times) for name, times in timings.items()}

    memory = {
        "sgd": peak_bytes(lambda: fit(X, y, COURSE_SGD)) / X.nbytes,
        "gd": peak_bytes(lambda: fit(X, y, GD)) / X.nbytes,
    }

    for name, seconds in medians.items():
        runs = ", ".join(f"{t:.3f}" for t in timings[name])
        print(f"{name:26s} median {seconds:8.3f} s   (runs: {runs})")
    sgd, gd = results["sgd"], results["gd"]
    print(
        f"engine sgd: {len(sgd.history):,} history points (full training risk at every step), "
        f"final risk {sgd.history.train_risk[-1]:.6f}, gap to closed form "
        f"{sgd.metrics.risk_gap:.2e}, peak memory {memory['sgd']:.1f}× X"
    )
    print(
        f"engine gd:  {len(gd.history):,} history points, final risk "
        f"{gd.history.train_risk[-1]:.6f}, peak memory {memory['gd']:.1f}× X"
    )
    diffs = {key: float(np.max(np.abs(results[key].theta - thetas[key]))) for key in ("sgd", "gd")}
    print(f"max |Θ_engine − Θ_loop|: sgd {diffs['sgd']:.2e}, gd {diffs['gd']:.2e}")
    summary = {
        "pupils": len(y),
        "repeats": args.repeats,
        "timing": "wall-clock median of interleaved repeats",
        "sgd_speedup": round(medians["loop_sgd"] / medians["engine_sgd"], 2),
        "gd_speedup": round(medians["loop_gd"] / medians["engine_gd"], 2),
        "max_abs_theta_diff": max(diffs.values()),
        "sgd_peak_memory_ratio": round(memory["sgd"], 2),
        "gd_peak_memory_ratio": round(memory["gd"], 2),
        "memory_method": "tracemalloc peak during fit / X.nbytes",
        "openblas_num_threads": threads,
        "seconds": {name: round(seconds, 4) for name, seconds in medians.items()},
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
