"""POST /predict: pupils' course grades in, predicted exam grades out."""

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from app.schemas.common import MODEL_NAME_PATTERN, StrictModel


class PredictRequest(StrictModel):
    # "version": "3" is refused like a grade written as a string.
    model_config = ConfigDict(extra="forbid", strict=True)

    model: str = Field(
        min_length=1, max_length=100, pattern=MODEL_NAME_PATTERN, examples=["concours"]
    )
    version: int | None = Field(
        default=None,
        ge=1,
        le=2**31 - 1,
        description="Pin a version; default: the model's active version",
        examples=[None],
    )
    students: list[dict[str, float | int | str]] = Field(
        min_length=1,
        description="One object per pupil: exactly the version's features as JSON numbers "
        "inside the grade range, and an optional `id` echoed back",
        examples=[[{"id": "n1", "maths": 13, "info": 14, "francais": 11}]],
    )


class PredictionRead(BaseModel):
    id: str | None = Field(examples=["n1"])
    prediction: float = Field(description="h_Θ(x) clipped into the grade range", examples=[12.54])
    raw: float = Field(description="h_Θ(x) = w0 + Σ wj·xj", examples=[12.54])
    interval: tuple[float, float] | None = Field(
        description="95% prediction interval, clipped into the grade range; null when the "
        "version has no residual standard deviation",
        examples=[[10.9, 14.2]],
    )
    contributions: dict[str, float] = Field(
        description="`intercept` (w0) and wj·xj per feature; they add up to `raw`",
        examples=[{"intercept": 0, "maths": 4.29, "info": 4.62, "francais": 3.63}],
    )
    extrapolated: bool = Field(
        description="A grade lies outside what the training cohort had for that feature"
    )


class PredictResponse(BaseModel):
    model: str = Field(examples=["concours"])
    version: int = Field(examples=[1])
    target: str = Field(examples=["concours"])
    trained_at: datetime = Field(description="When the version was created")
    cohort_id: uuid.UUID | None
    predictions: list[PredictionRead]
