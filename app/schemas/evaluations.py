"""Evaluations: how a version predicted a later cohort (errors, bias, interval coverage, by
group), and the leaderboard of a model's versions on one cohort."""

import uuid
from datetime import datetime

from pydantic import BaseModel, Field

from app.schemas.common import StrictModel


def evaluation_location(model: str, version: int, evaluation_id: uuid.UUID) -> str:
    """The URL of one stored evaluation: a 201's Location, a finished job's evaluation_url."""
    return f"/models/{model}/versions/{version}/evaluations/{evaluation_id}"


class EvaluationCreate(StrictModel):
    cohort_id: uuid.UUID = Field(
        description="A later cohort of your organisation with the version's features and "
        "target (by API name), e.g. next year's pupils once their results are in",
        examples=["3f2b8c1e-8d4a-4f7e-9a57-2c1d0e6b5a10"],
    )


class GroupFigures(BaseModel):
    n: int = Field(examples=[31])
    rmse: float = Field(examples=[1.12])
    mae: float = Field(examples=[0.91])
    mean_error: float = Field(examples=[-0.2], description="Mean of prediction − actual")
    interval_coverage: float | None = Field(
        examples=[0.94], description="Share of actual grades inside the 95% interval"
    )


class CalibrationBin(BaseModel):
    bin: int = Field(examples=[1], description="1 = the pupils with the lowest predictions")
    n: int = Field(examples=[12])
    mean_predicted: float = Field(examples=[7.9])
    mean_actual: float = Field(examples=[8.3])


class EvaluationRead(BaseModel):
    id: uuid.UUID
    model: str = Field(examples=["concours"])
    version: int = Field(examples=[1])
    active: bool = Field(description="The version is the model's active one now")
    cohort_id: uuid.UUID
    cohort_name: str = Field(examples=["promo 2020-2021"])
    cohort_erased: bool = Field(
        description="The cohort has since been erased: the figures stay, the sample is gone"
    )
    n: int = Field(examples=[120], description="Pupils evaluated")
    mse: float = Field(examples=[1.44])
    rmse: float = Field(examples=[1.2])
    mae: float = Field(examples=[0.95])
    r2: float | None = Field(
        examples=[0.87], description="1 − SSE/SST; null when every actual grade is equal"
    )
    mean_error: float = Field(
        examples=[0.15], description="Bias: mean of prediction − actual (positive: too high)"
    )
    interval_coverage: float | None = Field(
        examples=[0.95],
        description="Share of actual grades inside the version's 95% prediction interval "
        "(as /predict gives it); null when the version has no interval",
    )
    extrapolated: int = Field(
        examples=[3], description="Pupils with a grade outside the version's training range"
    )
    by_group: dict[str, GroupFigures] = Field(
        description="Per label of the cohort's group column (a class); {} without one",
        examples=[
            {
                "TS1": {
                    "n": 31,
                    "rmse": 1.1,
                    "mae": 0.9,
                    "mean_error": -0.2,
                    "interval_coverage": 0.94,
                }
            }
        ],
    )
    calibration: list[CalibrationBin] = Field(
        description="Mean actual grade per decile of the predicted grade"
    )
    sample: list[tuple[float, float]] | None = Field(
        description="Up to 500 (predicted, actual) pairs for plots, no ids; null once the "
        "cohort is erased",
        examples=[[[12.5, 13.0], [9.75, 9.0]]],
    )
    created_at: datetime


class EvaluationsRead(BaseModel):
    data: list[EvaluationRead]
    count: int
