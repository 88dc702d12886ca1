"""The audit trail, as GET /audit returns it."""

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class AuditEventRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int = Field(description="Increasing: later events have larger ids")
    occurred_at: datetime
    key_id: uuid.UUID | None = Field(
        description="The key that did it; null: the service itself (retention sweep)"
    )
    key_name: str | None
    action: str = Field(examples=["cohort.erased"])
    object: str | None = Field(
        description="The path of what the action touched", examples=["/models/concours/versions/3"]
    )
    request_id: str | None = Field(description="The X-Request-ID of the request that did it")
    status: str = Field(
        description="'ok'; for job.finished the job's end (succeeded, failed, cancelled); for "
        "job.cancelled the job's status after the request",
        examples=["ok"],
    )
    figures: dict[str, int | float | str | bool | None] | None = Field(
        description="A few counts and names; never grades, pupils' ids or request bodies",
        examples=[{"pupils": 120, "model": "concours", "version": 3}],
    )


class AuditEventsRead(BaseModel):
    data: list[AuditEventRead]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null on the last page"
    )
