import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from app.schemas.common import API_NAME_SCHEMA, GradeCell, StrictModel
from app.tables import SpecialMarks

SPECIAL_MARKS_DESCRIPTION = (
    "`refuse` (default): a special mark (Abs, Disp, N.Not, NE, Inap, N.Rdu, EXC, ATT, an empty "
    "cell; Abs*, N.Rdu*) is a 422 naming the row, the column and the code. `drop`: a pupil "
    "with an excluded mark in a feature or the target is left out, and Abs* / N.Rdu* count as "
    "the low end of grade_range. Marks written a/b (15/20) are rescaled either way."
)


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
    special_marks: SpecialMarks = Field(
        default="refuse",
        description=SPECIAL_MARKS_DESCRIPTION,
    )
    group_column: str | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        description="The key of each pupil that holds a short group label (a class, a "
        "division; at most 50 characters, never a name). Not a feature: evaluations break "
        "errors down by it.",
        examples=["classe"],
    )
    students: list[dict[str, GradeCell]] = Field(
        json_schema_extra={
            "minItems": 2,
            "items": {
                "type": "object",
                "properties": {"id": {"type": ["string", "integer"], "minLength": 1}},
                "additionalProperties": {"type": ["number", "string", "null"]},
            },
        },
        description="One object per pupil: an optional pseudonymous `id`, one grade per "
        "feature and for the target (a JSON number; a special mark as its code, e.g. "
        '`"Abs"`, `"15/20"`, or null), and the group label if `group_column` is set.',
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


class ImportReport(BaseModel):
    """What an upload received, kept, dropped and converted; nothing is done silently."""

    received: int = Field(description="Pupil rows in the upload")
    kept: int
    dropped: int
    dropped_rows: list[int] = Field(
        description="The dropped pupils' rows, numbered as in error locs (CSV: 1 is the first "
        "row after the header; JSON: the index in `students`)"
    )
    special_marks: dict[str, dict[str, int]] = Field(
        description="Per column, how many cells held each code", examples=[{"Maths": {"Abs": 2}}]
    )
    rescaled: dict[str, int] = Field(
        description="Per column, how many marks written a/b were rescaled",
        examples=[{"Info": 1}],
    )
    ignored_columns: list[str] = Field(
        description="Headers of the columns not read (neither stored nor echoed)",
        examples=[["Nom", "Prénom"]],
    )


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
    group_column: str | None = Field(description="The column of group labels, if any")
    import_report: ImportReport | None = Field(
        description="What the upload received, kept, dropped and converted"
    )
    created_at: datetime
    retain_until: datetime | None = Field(
        description="When the retention sweep erases the cohort; null: kept until deleted"
    )
    stats: dict[str, GradeStats]


class CohortsRead(BaseModel):
    data: list[CohortRead]
    count: int = Field(description="Total number of cohorts, all pages together")


class StudentRead(BaseModel):
    row: int = Field(description="0-based position in the uploaded table")
    id: str | None = Field(description="As uploaded, or its pseudonym (GRADECAST_ID_PEPPER)")
    group: str | None
    grades: dict[str, float]


class StudentsRead(BaseModel):
    data: list[StudentRead]
    count: int


class ErasedCohort(BaseModel):
    id: uuid.UUID
    name: str
    rows_erased: int


class StudentErasureRead(BaseModel):
    """Where one pupil's rows were erased; the id itself is not echoed."""

    rows_erased: int
    cohorts: list[ErasedCohort]
