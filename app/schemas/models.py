"""Models, their versions (a Θ each) and the history of which version is active."""

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.schemas.activations import ActivationOutcome
from app.schemas.common import API_NAME_SCHEMA, PRINTABLE_PATTERN, StrictModel

# strict: JSON numbers only (lax mode took `false` and "3" for numbers).
FiniteFloat = Annotated[float, Field(strict=True, allow_inf_nan=False)]


class VersionCreate(StrictModel):
    """A hand-set Θ, as in the course: "Prenons w0 = 0, w1 = 0.33, w2 = 0.33, w3 = 0.33"."""

    features: list[str] = Field(
        min_length=1,
        max_length=100,
        examples=[["maths", "info", "francais"]],
        json_schema_extra={"items": API_NAME_SCHEMA, "uniqueItems": True},
    )
    feature_labels: (
        list[Annotated[str, Field(max_length=200, pattern=PRINTABLE_PATTERN)]] | None
    ) = Field(
        default=None,
        description="Display names of the features (default: the features themselves)",
        examples=[["Maths", "Info", "Français"]],
    )
    target: str = Field(
        min_length=1, max_length=100, examples=["concours"], json_schema_extra=API_NAME_SCHEMA
    )
    theta: list[FiniteFloat] = Field(
        min_length=2,
        max_length=101,
        description="Θ = (w0, w1, …, wp): the intercept, then one weight per feature, in order",
        examples=[[0, 0.33, 0.33, 0.33]],
    )
    grade_range: tuple[FiniteFloat, FiniteFloat] = Field(default=(0.0, 20.0), examples=[[0, 20]])
    residual_std: FiniteFloat | None = Field(
        default=None,
        ge=0,
        description="σ of the residuals, for a 95% prediction interval; null: no interval",
        examples=[None],
    )
    n_train: int | None = Field(
        default=None,
        ge=1,
        description="Pupils σ was estimated on; with it the interval uses Student's t",
        examples=[None],
    )
    activate: bool = Field(
        default=False,
        strict=True,
        description="Make this the active version at once",
        examples=[True],
    )
    reason: str | None = Field(
        default=None,
        max_length=200,
        pattern=PRINTABLE_PATTERN,
        description="Kept in the activation history",
    )


class Coefficients(BaseModel):
    intercept: float = Field(examples=[0.0])
    weights: dict[str, float] = Field(examples=[{"maths": 0.33, "info": 0.33, "francais": 0.33}])


class VersionRead(BaseModel):
    model: str = Field(examples=["concours"])
    version: int = Field(examples=[1])
    active: bool
    coefficients: Coefficients
    theta: list[float] = Field(examples=[[0, 0.33, 0.33, 0.33]])
    features: list[str] = Field(examples=[["maths", "info", "francais"]])
    feature_labels: list[str] = Field(examples=[["Maths", "Info", "Français"]])
    target: str = Field(examples=["concours"])
    grade_range: tuple[float, float] = Field(examples=[[0, 20]])
    training_range: dict[str, tuple[float, float]] | None = Field(
        description="Per feature, the lowest and highest grade of the training cohort; "
        "predictions outside it are flagged as extrapolated"
    )
    metrics: dict[str, Any] | None = Field(
        description="Figures of the fit (see the README), among them condition_number: κ of "
        "the standardised training design (1, (X − x̄)/s), null when the grades are collinear"
    )
    hyperparameters: dict[str, Any] | None
    residual_std: float | None = Field(
        description="σ behind a hand-set version's interval; null for a trained version, "
        "whose interval (if any) carries its own s (see `interval`, and metrics.residual_std)"
    )
    n_train: int | None
    interval: Literal["ols", "sigma"] | None = Field(
        description="What /predict's 95% interval is for this version. 'ols': ŷ ± "
        "t(n−p−1)·s·√(1 + x̃ᵀ(X̃ᵀX̃)⁻¹x̃) from the stored training design, exact for Gaussian "
        "noise (closed_form without l2 on full-rank grades, or gd/sgd that reached that Θ "
        "to within 1% of s). 'sigma': a hand-set σ, raw ± t(n_train−p−1)·σ (1.96·σ without "
        "n_train), which takes Θ as exact. null: no interval, rather than a misleading one "
        "(l2 > 0, gd/sgd short of the least-squares Θ, collinear grades, n ≤ p + 1)",
        examples=["ols"],
    )
    warnings: list[str] | None = Field(
        description="The training job's warnings (see JobRead.warnings); null when none"
    )
    activation: ActivationOutcome | None = Field(
        description="Whether the training job activated this version and why (see "
        "JobRead.activation); null for a hand-set version"
    )
    source: str = Field(examples=["manual"], description="'job' (trained) or 'manual' (hand-set)")
    cohort_id: uuid.UUID | None
    cohort_name: str | None
    cohort_erased: bool = Field(description="The training cohort has since been erased")
    erased_students: int = Field(
        description="Pupils erased one by one from the training cohort since (the version "
        "was learned with them)"
    )
    job_id: uuid.UUID | None
    created_at: datetime


class VersionsRead(BaseModel):
    data: list[VersionRead]
    count: int


class ModelRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    name: str = Field(examples=["concours"])
    active_version: int | None = Field(examples=[1])
    latest_version: int = Field(examples=[1])
    created_at: datetime


class ModelsRead(BaseModel):
    data: list[ModelRead]
    count: int


class ActivationUpdate(StrictModel):
    version: int = Field(ge=1, le=2**31 - 1, examples=[2])
    reason: str | None = Field(
        default=None,
        max_length=200,
        pattern=PRINTABLE_PATTERN,
        examples=["rollback: v3 overfits"],
    )


class ActivationRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    from_version: int | None = Field(examples=[1])
    to_version: int = Field(examples=[2])
    created_at: datetime
    key_id: uuid.UUID | None
    reason: str


class ActivationsRead(BaseModel):
    data: list[ActivationRead]
    count: int
