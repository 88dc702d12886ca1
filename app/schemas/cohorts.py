import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from app.schemas.common import API_NAME_SCHEMA, StrictModel


class CohortCreate(StrictModel):
    """A past cohort as JSON. Feature names are API names: lowercase letters, digits, `_`."""

    name: str = Field(min_length=1, max_length=200, examples=["promo-2019-2020"])
    features: list[str] = Field(
        min_length=1,
        max_length=100,
        examples=[["maths", "info", "francais"]],
        json_schema_extra={"items": API_NAME_SCHEMA, "uniqueItems": True},
    )
    target: str = Field(
        min_length=1, max_length=100, examples=["concours"], json_schema_extra=API_NAME_SCHEMA
    )
    grade_range: tuple[float, float] = Field(default=(0.0, 20.0), examples=[[0, 20]])
    students: list[dict[str, float | int | str | None]] = Field(
        json_schema_extra={
            "minItems": 2,
            "items": {
                "type": "object",
                "properties": {"id": {"type": ["string", "integer"], "minLength": 1}},
                "additionalProperties": {"type": "number"},
            },
        },
        description="One object per pupil: an optional pseudonymous `id` and one grade per "
        "feature and for the target.",
        examples=[
            [
                {"id": "e1", "maths": 12, "info": 15, "francais": 9, "concours": 14},
                {"id": "e2", "maths": 5, "info": 9, "francais": 12, "concours": 7},
            ]
        ],
    )


class GradeStats(BaseModel):
    mean: float
    std: float
    min: float
    max: float


class CohortRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    features: list[str] = Field(examples=[["maths", "info", "francais"]])
    feature_labels: list[str] = Field(
        description="The headers as given in the upload", examples=[["Maths", "Info", "Français"]]
    )
    target: str = Field(examples=["concours"])
    target_label: str = Field(examples=["Concours"])
    grade_range: tuple[float, float] = Field(examples=[[0, 20]])
    n_students: int
    has_ids: bool
    created_at: datetime
    stats: dict[str, GradeStats]


class CohortsRead(BaseModel):
    data: list[CohortRead]
    count: int = Field(description="Total number of cohorts, all pages together")


class StudentRead(BaseModel):
    row: int = Field(description="0-based position in the uploaded table")
    id: str | None
    grades: dict[str, float]


class StudentsRead(BaseModel):
    data: list[StudentRead]
    count: int
