import math
import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationInfo, field_validator, model_validator

from app.engine import DEFAULT_FOLDS, MAX_FOLDS, MIN_FOLDS, TrainingConfig
from app.schemas.activations import GATE_COHORT_DESCRIPTION, ActivationOutcome
from app.schemas.common import MODEL_NAME_DESCRIPTION, MODEL_NAME_PATTERN, StrictModel

# The engine's defaults are the API's: one source of truth.
_DEFAULT = TrainingConfig()
Activate = Literal["always", "if_better", "never"]
JobStatusName = Literal["queued", "running", "succeeded", "failed", "cancelled"]
JobKindName = Literal["training", "evaluation"]


class TrainingParameters(StrictModel):
    """The engine's options, named as in the course; every one has a default."""

    algorithm: Literal["sgd", "gd", "closed_form"] = Field(
        default=_DEFAULT.algorithm,
        description="`sgd` (mini-batch, as the course), `gd` (full batch) or "
        "`closed_form` (least squares)",
    )
    learning_rate: float = Field(
        default=_DEFAULT.learning_rate,
        gt=0,
        le=1e3,
        description="λ in Θ ← Θ − λ∇R",
        examples=[0.001],
    )
    epochs: int = Field(
        default=_DEFAULT.epochs, ge=1, le=100_000, description="sgd: passes over the cohort"
    )
    batch_size: int = Field(
        default=_DEFAULT.batch_size, ge=1, le=1_000_000, description="sgd: pupils per step"
    )
    iterations: int = Field(
        default=_DEFAULT.iterations, ge=1, le=10_000_000, description="gd: steps"
    )
    shuffle: bool = Field(
        default=_DEFAULT.shuffle,
        strict=True,
        description="sgd: a fresh seeded permutation per epoch",
    )
    seed: int = Field(default=_DEFAULT.seed, ge=0, le=2**32 - 1)
    init_theta: list[float] | None = Field(
        default=None,
        description="Initial Θ = (w0, w1, …, wp) in grade units; default zeros",
        examples=[[0, 0.33, 0.33, 0.33]],
    )
    standardize: bool = Field(
        default=_DEFAULT.standardize,
        strict=True,
        description="Fit on z-scored grades; Θ is returned in grade units",
    )
    l2: float = Field(default=_DEFAULT.l2, ge=0, le=1e6, description="Ridge penalty")
    validation_fraction: float = Field(
        default=_DEFAULT.validation_fraction,
        ge=0,
        lt=1,
        description="Share of pupils held out (seeded) for validation",
    )
    patience: int | None = Field(
        default=_DEFAULT.patience,
        ge=1,
        description="Early stopping: recorded points without a better validation risk",
    )
    record_every: int = Field(
        default=_DEFAULT.record_every,
        ge=1,
        le=10_000_000,
        description="Record the loss history every k steps",
    )

    validation: Literal["holdout", "kfold"] = Field(
        default="holdout",
        description="`holdout`: validate on `validation_fraction` of the pupils; `kfold`: "
        "k-fold cross-validation on `folds` seeded folds, the version's "
        "metrics get cv_rmse, cv_rmse_std and one rmse per fold, and Θ is fitted on every pupil",
    )
    folds: int = Field(
        default=DEFAULT_FOLDS,
        ge=MIN_FOLDS,
        le=MAX_FOLDS,
        strict=True,
        description="kfold: number of folds, at most the cohort's pupils",
    )

    @field_validator("learning_rate", "l2", "validation_fraction")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("must be a finite number")
        return value

    @field_validator("init_theta")
    @classmethod
    def _finite_theta(cls, value: list[float] | None) -> list[float] | None:
        if value is not None:
            if not 2 <= len(value) <= 101:
                raise ValueError("needs w0 and one weight per feature")
            if not all(math.isfinite(w) for w in value):
                raise ValueError("values must be finite numbers")
        return value

    @model_validator(mode="after")
    def _patience_needs_holdout(self) -> "TrainingParameters":
        if self.patience is not None and self.validation_fraction == 0:
            raise ValueError("patience (early stopping) needs validation_fraction > 0")
        return self


class JobCreate(TrainingParameters):
    cohort_id: uuid.UUID
    model: str = Field(
        default="concours",
        pattern=MODEL_NAME_PATTERN,
        description=MODEL_NAME_DESCRIPTION,
        examples=["concours"],
    )
    activate: Activate = Field(
        default="if_better",
        description="`if_better`: activate when there is no active version or when the new Θ "
        "has a lower risk than the active one on this job's validation rows (training rows "
        "without a hold-out)",
    )
    gate_cohort_id: uuid.UUID | None = Field(default=None, description=GATE_COHORT_DESCRIPTION)

    @field_validator("gate_cohort_id")
    @classmethod
    def _gate_needs_if_better(
        cls, value: uuid.UUID | None, info: ValidationInfo
    ) -> uuid.UUID | None:
        if value is None:
            return value
        if info.data.get("activate", "if_better") != "if_better":
            raise ValueError("a promotion gate needs activate=if_better")
        if value == info.data.get("cohort_id"):
            raise ValueError("the gate cohort must be another cohort than the training one")
        return value

    model_config = {
        "extra": "forbid",
        "json_schema_extra": {
            "examples": [
                {
                    "cohort_id": "6f1c2b9e-4a8d-4c1e-9d7a-2f0b8e5c3a11",
                    "model": "concours",
                    "algorithm": "sgd",
                    "learning_rate": 0.001,
                    "epochs": 5,
                    "batch_size": 10,
                    "init_theta": [0, 0.33, 0.33, 0.33],
                }
            ]
        },
    }


class JobProgress(BaseModel):
    steps_done: int
    total_steps: int
    epoch: int | None
    risk: float | None = Field(description="Current full empirical risk R(Θ) on training rows")


class JobRead(BaseModel):
    id: uuid.UUID
    kind: JobKindName = Field(
        description="`training` (POST /jobs: fits a new version) or `evaluation` (POST "
        "/models/{name}/versions/{version}/evaluations on a cohort above "
        "GRADECAST_SYNC_EVALUATION_LIMIT pupils: evaluates `model_version` on `cohort_id`)",
        examples=["training"],
    )
    cohort_id: uuid.UUID | None = Field(
        description="The cohort trained or evaluated on; null once it is erased"
    )
    model: str
    algorithm: str | None = Field(description="Training jobs; null for an evaluation")
    hyperparameters: dict[str, Any] | None = Field(
        description="The options the algorithm used, defaults filled in (sgd has no "
        "iterations, gd no epochs or batch_size); null for an evaluation"
    )
    activate: Activate | None = Field(description="Training jobs; null for an evaluation")
    status: JobStatusName
    progress: JobProgress
    attempts: int
    cancel_requested: bool
    error: str | None
    warnings: list[str] | None = Field(
        description="Sentences about a finished fit that are not failures, e.g. gd/sgd on raw "
        "grades so ill-conditioned that the iterations cannot get near the optimum (the "
        "message gives the condition number and what standardize=true would make of it); "
        "null when there are none",
        examples=[None],
    )
    model_version: int | None = Field(
        description="Training: the version the job produced, once it has succeeded; "
        "evaluation: the version evaluated"
    )
    evaluation_id: uuid.UUID | None = Field(
        description="An evaluation job's stored evaluation, once it has succeeded"
    )
    evaluation_url: str | None = Field(
        description="Where to read that evaluation (GET), as the Location of a 201 would be",
        examples=[None],
    )
    gate_cohort_id: uuid.UUID | None = Field(description=GATE_COHORT_DESCRIPTION)
    activation: ActivationOutcome | None = Field(
        description="Once the job has succeeded: whether its version was activated and why"
    )
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class JobsRead(BaseModel):
    data: list[JobRead]
    count: int


class LossPoint(BaseModel):
    step: int
    epoch: int
    train_loss: float
    val_loss: float | None
    grad_norm: float


class LossHistory(BaseModel):
    job_id: uuid.UUID
    total_points: int
    points: list[LossPoint]
