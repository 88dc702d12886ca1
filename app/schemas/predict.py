"""POST /predict: pupils' course grades in, predicted exam grades out."""

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from app.schemas.common import MODEL_NAME_PATTERN, GradeCell, StrictModel
from app.tables import SpecialMarks

ON_ERROR_DESCRIPTION = (
    "`refuse` (default): the first invalid pupil is a 422 naming its row and column. `skip`: "
    "200, every pupil in order; an invalid one has `prediction: null` and an `error` "
    "({code, loc, msg}; code special_mark, not_a_grade, out_of_range or invalid_pupil)."
)
PREDICT_MARKS_DESCRIPTION = (
    "How a special mark in a pupil's grades is read. `refuse` (default): any code (Abs, "
    "Disp, N.Not, an empty cell, Abs*…) keeps the pupil from a prediction (error "
    "special_mark). `drop`: Abs* and N.Rdu* count as the lowest grade; the other codes still "
    "leave the pupil without a prediction. a/b marks (15/20) are rescaled either way."
)


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
    students: list[dict[str, GradeCell]] = Field(
        min_length=1,
        description="One object per pupil: exactly the version's features as JSON numbers "
        'inside the grade range (a special mark as its code, e.g. "Abs", or null), and an '
        "optional `id` echoed back",
        examples=[[{"id": "n1", "maths": 13, "info": 14, "francais": 11}]],
    )
    on_error: Literal["refuse", "skip"] = Field(default="refuse", description=ON_ERROR_DESCRIPTION)
    special_marks: SpecialMarks = Field(default="refuse", description=PREDICT_MARKS_DESCRIPTION)


class PredictColumnsRequest(StrictModel):
    """The same request, pupils as columns: one list per feature, in the pupils' order."""

    model_config = ConfigDict(extra="forbid", strict=True)

    model: str = Field(
        min_length=1, max_length=100, pattern=MODEL_NAME_PATTERN, examples=["concours"]
    )
    version: int | None = Field(
        default=None, ge=1, le=2**31 - 1, description="Pin a version; default: the active one"
    )
    columns: dict[str, list[float | int | str | None]] = Field(
        min_length=1,
        description="One list per feature of the version, all of one length (the pupils), "
        "values as in `students`",
        examples=[{"maths": [13, 12.5], "info": [14, 9], "francais": [11, 15]}],
    )
    ids: list[str | int] | None = Field(
        default=None, description="The pupils' ids, echoed back", examples=[["n1", "n2"]]
    )
    on_error: Literal["refuse", "skip"] = Field(default="refuse", description=ON_ERROR_DESCRIPTION)
    special_marks: SpecialMarks = Field(default="refuse", description=PREDICT_MARKS_DESCRIPTION)


FIELDS_DESCRIPTION = (
    "`all` (default): every figure of each pupil. `prediction`: `id`, `prediction`, `raw` and "
    "`extrapolated` only, without the interval and the contributions (cheaper for big "
    "batches; in CSV, without interval_low and interval_high)."
)
Fields = Literal["all", "prediction"]


class PredictQuery(BaseModel):
    """The query string of /predict: CSV reading options, and the model of a CSV body.

    Read by the route itself rather than as FastAPI parameters: seven declared query
    parameters cost a 1-pupil request more than its prediction (FastAPI validates each in
    turn). Documented in OpenAPI from this model (``openapi_query_parameters``)."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = Field(
        default=None, max_length=100, pattern=MODEL_NAME_PATTERN, description="CSV only: the model"
    )
    version: int | None = Field(
        default=None,
        ge=1,
        le=2**31 - 1,
        description="CSV only: pin a version (default: the active)",
    )
    id_column: str = Field(
        default="id", max_length=200, description="CSV: the pupils' id column, echoed back"
    )
    features: str | None = Field(
        default=None,
        max_length=400,
        description="CSV: the grade columns to read, comma-separated headers or API names "
        "(e.g. Maths,Info,Français); other columns (Nom, Prénom…) are ignored and never "
        "echoed. Default: every column but the id, each of which must be a feature",
    )
    special_marks: SpecialMarks = Field(
        default="refuse", description="CSV: " + PREDICT_MARKS_DESCRIPTION
    )
    on_error: Literal["refuse", "skip"] = Field(default="refuse", description=ON_ERROR_DESCRIPTION)
    fields: Fields = Field(default="all", description=FIELDS_DESCRIPTION)


class PupilErrorRead(BaseModel):
    code: Literal["special_mark", "not_a_grade", "out_of_range", "invalid_pupil"]
    loc: list[str | int] = Field(examples=[["students", 3, "maths"]])
    msg: str


class PredictionRead(BaseModel):
    id: str | None = Field(examples=["n1"])
    prediction: float | None = Field(
        description="h_Θ(x) clipped into the grade range (null: a skipped pupil)",
        examples=[12.54],
    )
    raw: float | None = Field(description="h_Θ(x) = w0 + Σ wj·xj", examples=[12.54])
    interval: tuple[float, float] | None = Field(
        default=None,
        description="95% prediction interval, clipped into the grade range; null when the "
        "version has no residual standard deviation",
        examples=[[10.9, 14.2]],
    )
    contributions: dict[str, float] | None = Field(
        default=None,
        description="`intercept` (w0) and wj·xj per feature; they add up to `raw`",
        examples=[{"intercept": 0, "maths": 4.29, "info": 4.62, "francais": 3.63}],
    )
    extrapolated: bool | None = Field(
        description="A grade lies outside what the training cohort had for that feature"
    )
    error: PupilErrorRead | None = Field(
        default=None,
        description="With on_error=skip: null, or why this pupil got no prediction",
    )


class PredictResponse(BaseModel):
    model: str = Field(examples=["concours"])
    version: int = Field(examples=[1])
    target: str = Field(examples=["concours"])
    trained_at: datetime = Field(description="When the version was created")
    cohort_id: uuid.UUID | None
    predictions: list[PredictionRead]
