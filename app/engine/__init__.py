"""gradecast's learning engine: the course's linear regression, in plain numpy.

h_Θ(x) = w0 + Σ wj·xj is fitted by closed form, gradient descent or mini-batch SGD on the
empirical risk R(Θ) = (1/n) Σ (h_Θ(xi) − yi)², optionally plus l2·Σ_{j≥1} wj².
"""

from app.engine.config import TrainingConfig, options_used
from app.engine.crossval import (
    DEFAULT_FOLDS,
    MAX_FOLDS,
    MIN_FOLDS,
    CrossValidation,
    FoldScore,
    check_folds,
    cross_validate,
    fold_steps,
)
from app.engine.data import kfold_indices, split_holdout
from app.engine.errors import (
    DegenerateDataError,
    DivergenceError,
    EngineError,
    InvalidConfigError,
    TrainingCancelled,
)
from app.engine.history import FitMetrics, History, Progress, thin
from app.engine.intervals import (
    IntervalDesign,
    IntervalKind,
    interval_half_width,
    interval_kind,
    student_t_975,
)
from app.engine.linear import contributions, max_stable_learning_rate, predict, risk
from app.engine.schedule import planned_steps
from app.engine.training import FitResult, fit

__all__ = [
    "DEFAULT_FOLDS",
    "MAX_FOLDS",
    "MIN_FOLDS",
    "CrossValidation",
    "DegenerateDataError",
    "DivergenceError",
    "EngineError",
    "FitMetrics",
    "FitResult",
    "FoldScore",
    "History",
    "IntervalDesign",
    "IntervalKind",
    "InvalidConfigError",
    "Progress",
    "TrainingCancelled",
    "TrainingConfig",
    "check_folds",
    "contributions",
    "cross_validate",
    "fit",
    "fold_steps",
    "interval_half_width",
    "interval_kind",
    "kfold_indices",
    "max_stable_learning_rate",
    "options_used",
    "planned_steps",
    "predict",
    "risk",
    "split_holdout",
    "student_t_975",
    "thin",
]
