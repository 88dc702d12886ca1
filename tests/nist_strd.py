"""NIST StRD linear least-squares problems of higher difficulty, with their certified values.

Source of the data and of every certified coefficient: NIST Statistical Reference Datasets,
Linear Least Squares Regression, https://www.itl.nist.gov/div898/strd/lls/lls.shtml
(Longley.dat, Wampler1.dat, Wampler2.dat). data/longley.csv is statsmodels' copy of
Longley's 16 rows (statsmodels/datasets/longley/longley.csv in the statsmodels 0.15.0 wheel,
which cites the same NIST page); Wampler1 and Wampler2 are polynomials of x = 0..20 whose
NIST y values are exact decimals, rebuilt here with exact rational arithmetic.
"""

import csv
import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class Problem:
    name: str
    features: list[str]
    X: FloatArray
    y: FloatArray
    certified: FloatArray  # (b0, b1, ..., bp), intercept first


def longley() -> Problem:
    path = Path(__file__).parent / "data" / "longley.csv"
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    features = ["GNPDEFL", "GNP", "UNEMP", "ARMED", "POP", "YEAR"]
    X = np.array([[float(row[name]) for name in features] for row in rows])
    y = np.array([float(row["TOTEMP"]) for row in rows])
    certified = np.array(
        [
            -3482258.63459582,
            15.0618722713733,
            -0.358191792925910e-01,
            -2.02022980381683,
            -1.03322686717359,
            -0.511041056535807e-01,
            1829.15146461355,
        ]
    )
    return Problem("Longley", features, X, y, certified)


def _wampler(name: str, coefficients: list[Fraction]) -> Problem:
    x = [Fraction(i) for i in range(21)]
    X = np.array([[float(xi**k) for k in range(1, 6)] for xi in x])
    y = np.array([float(sum(c * xi**k for k, c in enumerate(coefficients))) for xi in x])
    certified = np.array([float(c) for c in coefficients])
    return Problem(name, [f"x{k}" for k in range(1, 6)], X, y, certified)


def wampler1() -> Problem:
    """y = 1 + x + x² + x³ + x⁴ + x⁵: every certified coefficient is 1."""
    return _wampler("Wampler1", [Fraction(1)] * 6)


def wampler2() -> Problem:
    """y = 1 + 0.1x + 0.01x² + 0.001x³ + 1e-4x⁴ + 1e-5x⁵."""
    return _wampler("Wampler2", [Fraction(1, 10**k) for k in range(6)])


PROBLEMS = (longley, wampler1, wampler2)


def correct_digits(estimate: FloatArray, certified: FloatArray) -> FloatArray:
    """NIST's log relative error, −log10(|b − c|/|c|) per coefficient (15.9 when exact)."""
    errors = np.abs(estimate - certified) / np.abs(certified)
    return np.array([15.9 if e == 0 else min(15.9, -math.log10(e)) for e in errors])
