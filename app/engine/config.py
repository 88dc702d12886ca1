"""Training options, named as in the course (learning_rate λ, batch_size, epochs...)."""

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from app.engine.errors import InvalidConfigError

Algorithm = Literal["gd", "sgd", "closed_form"]
ALGORITHMS: tuple[Algorithm, ...] = ("gd", "sgd", "closed_form")

# The options each algorithm reads; it ignores the others (sgd has no `iterations`, gd no
# `epochs` or `batch_size`, the closed form no step at all). `seed` draws the hold-out,
# and for sgd the shuffles too.
_EVERY_ALGORITHM = ("algorithm", "standardize", "l2", "validation_fraction", "seed")
_STEPWISE = ("learning_rate", "init_theta", "patience", "record_every")
OPTIONS_USED: dict[Algorithm, tuple[str, ...]] = {
    "gd": (*_EVERY_ALGORITHM, *_STEPWISE, "iterations"),
    "sgd": (*_EVERY_ALGORITHM, *_STEPWISE, "epochs", "batch_size", "shuffle"),
    "closed_form": _EVERY_ALGORITHM,
}


def options_used(options: Mapping[str, Any]) -> dict[str, Any]:
    """Of a job's options (every field of TrainingConfig, by name), those its algorithm used;
    with `validation` "kfold", that and its `folds` too (a hold-out job has neither)."""
    used = {name: options[name] for name in OPTIONS_USED[options["algorithm"]]}
    if options.get("validation") == "kfold":
        used |= {"validation": "kfold", "folds": options["folds"]}
    return used


@dataclass(frozen=True)
class TrainingConfig:
    """How to fit Θ.

    `init_theta` is in original grade units, like the course's (0, 0.33, 0.33, 0.33), even when
    `standardize` is on. `patience` counts recorded history points (so `patience * record_every`
    steps) without a strict improvement of the validation risk; it needs a hold-out.
    """

    algorithm: Algorithm = "sgd"
    learning_rate: float = 1e-3
    iterations: int = 1000
    epochs: int = 5
    batch_size: int = 10
    shuffle: bool = False
    seed: int = 0
    init_theta: tuple[float, ...] | None = None
    standardize: bool = False
    l2: float = 0.0
    validation_fraction: float = 0.0
    patience: int | None = None
    record_every: int = 1

    def validate(self, n_features: int) -> None:
        """Raise InvalidConfigError naming the first option that is out of range."""
        if self.algorithm not in ALGORITHMS:
            raise InvalidConfigError("algorithm", f"must be one of {ALGORITHMS}")
        _check_positive_float("learning_rate", self.learning_rate)
        for name in ("iterations", "epochs", "batch_size", "record_every"):
            _check_positive_int(name, getattr(self, name))
        if not _is_int(self.seed) or self.seed < 0:
            raise InvalidConfigError("seed", f"must be an integer >= 0, got {self.seed!r}")
        if not _is_real(self.l2) or not math.isfinite(self.l2) or self.l2 < 0:
            raise InvalidConfigError("l2", f"must be a finite number >= 0, got {self.l2!r}")
        fraction = self.validation_fraction
        if not _is_real(fraction) or not 0 <= fraction < 1:
            raise InvalidConfigError("validation_fraction", f"must be in [0, 1), got {fraction!r}")
        if self.patience is not None:
            _check_positive_int("patience", self.patience)
            if fraction == 0:
                raise InvalidConfigError(
                    "patience", "early stopping needs a hold-out: set validation_fraction > 0"
                )
        if self.init_theta is not None:
            if len(self.init_theta) != n_features + 1:
                raise InvalidConfigError(
                    "init_theta",
                    f"needs {n_features + 1} values (w0 and one weight per feature), "
                    f"got {len(self.init_theta)}",
                )
            if not all(_is_real(w) and math.isfinite(w) for w in self.init_theta):
                raise InvalidConfigError("init_theta", "values must be finite numbers")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_real(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_positive_int(name: str, value: object) -> None:
    if not (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
        raise InvalidConfigError(name, f"must be an integer >= 1, got {value!r}")


def _check_positive_float(name: str, value: object) -> None:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not (ok and math.isfinite(value) and value > 0):  # type: ignore[arg-type,operator]
        raise InvalidConfigError(name, f"must be a finite number > 0, got {value!r}")
