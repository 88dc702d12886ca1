"""How often the 95% prediction interval of /predict contains the true exam grade.

    .venv/bin/python bench/coverage.py [--predictions 20000] [--seed 2026]

For each cohort size n (10, 30, 300): cohorts of n pupils with p = 3 grades drawn uniformly
over the grade range [0, 20], exam grade = 2 + 0.3·maths + 0.3·info + 0.3·français plus
Gaussian noise (σ = 1.5, unclipped, so the model holds exactly); a closed_form fit of each
cohort, then new pupils drawn over the whole grade range, each interval computed by the
engine functions /predict calls (`interval_half_width` with the version's IntervalDesign),
and compared with the new pupil's true grade. `--predictions` new pupils per n in all, 5 per
cohort; the standard error is taken between cohorts. Also shown: the interval /predict gave
before (raw ± t·s, leaving out the uncertainty of Θ). The last line is one JSON object with
the figures.
"""

import argparse
import json
import math

import numpy as np

from app.engine import TrainingConfig, fit, interval_half_width
from app.engine.intervals import sigma_half_width

THETA = np.array([2.0, 0.3, 0.3, 0.3])
NOISE = 1.5
PER_COHORT = 5
SIZES = (10, 30, 300)


def measure(n: int, predictions: int, rng: np.random.Generator) -> dict[str, float]:
    p = THETA.shape[0] - 1
    cohorts = math.ceil(predictions / PER_COHORT)
    covered_before = 0
    per_cohort = []
    widths = []
    for _ in range(cohorts):
        X = rng.uniform(0.0, 20.0, size=(n, p))
        y = THETA[0] + X @ THETA[1:] + rng.normal(0.0, NOISE, size=n)
        result = fit(X, y, TrainingConfig(algorithm="closed_form"))
        assert result.interval is not None
        new = rng.uniform(0.0, 20.0, size=(PER_COHORT, p))
        truth = THETA[0] + new @ THETA[1:] + rng.normal(0.0, NOISE, size=PER_COHORT)
        raw = result.theta[0] + new @ result.theta[1:]
        half = interval_half_width(
            new, design=result.interval, residual_std=None, n_train=result.metrics.n_train
        )
        assert half is not None
        per_cohort.append(float(np.mean(np.abs(truth - raw) <= half)))
        widths.append(float(np.mean(half)))
        assert result.metrics.residual_std is not None
        before = sigma_half_width(result.metrics.residual_std, n, p)
        covered_before += int(np.count_nonzero(np.abs(truth - raw) <= before))
    total = cohorts * PER_COHORT
    return {
        "n": n,
        "cohorts": cohorts,
        "predictions": total,
        "coverage": float(np.mean(per_cohort)),
        # From the spread between cohorts: the pupils of one cohort share its Θ, so they are
        # not independent trials and the binomial formula would understate it.
        "standard_error": float(np.std(per_cohort, ddof=1)) / math.sqrt(cohorts),
        "mean_half_width": float(np.mean(widths)),
        "coverage_without_leverage": covered_before / total,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--predictions", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    rows = [measure(n, args.predictions, rng) for n in SIZES]
    print("| n | cohorts | predictions | coverage | ± s.e. | mean half-width | t·s only (before) |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['n']} | {row['cohorts']} | {row['predictions']:,} | "
            f"{row['coverage']:.2%} | {row['standard_error']:.2%} | "
            f"{row['mean_half_width']:.2f} | {row['coverage_without_leverage']:.2%} |"
        )
    print(json.dumps({"coverage": rows}))


if __name__ == "__main__":
    main()
