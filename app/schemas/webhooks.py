"""Webhooks: a receiver's URL and the events it wants, and what was delivered to it."""

import uuid
from datetime import datetime
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

from app.schemas.common import PRINTABLE_PATTERN, StrictModel

# Every event a webhook can subscribe to (README: Integrating, for each one's payload).
WebhookEvent = Literal[
    "job.succeeded",
    "job.failed",
    "job.cancelled",
    "version.activated",
    "cohort.erased",
    "evaluation.created",
]
EVENTS: tuple[str, ...] = get_args(WebhookEvent)
DeliveryStatusName = Literal["pending", "delivering", "succeeded", "failed"]


class WebhookCreate(StrictModel):
    url: str = Field(
        min_length=1,
        max_length=2000,
        pattern=PRINTABLE_PATTERN,
        description="https (http only with GRADECAST_WEBHOOK_ALLOW_HTTP); loopback, "
        "link-local and private addresses are refused unless GRADECAST_WEBHOOK_ALLOW_PRIVATE.",
        examples=["https://sis.example.org/gradecast-events"],
    )
    events: list[WebhookEvent] = Field(
        min_length=1, max_length=len(EVENTS), examples=[["job.succeeded", "job.failed"]]
    )


class WebhookRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    url: str
    events: list[WebhookEvent]
    created_at: datetime


class WebhookCreated(WebhookRead):
    secret: str = Field(
        description="The signing secret (Standard Webhooks: `whsec_` + base64). Shown once.",
        examples=["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],
    )


class WebhooksRead(BaseModel):
    data: list[WebhookRead]
    count: int


class DeliveryRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID = Field(description="The `webhook-id` header of every attempt.")
    event: WebhookEvent
    status: DeliveryStatusName
    attempts: int
    next_attempt_at: datetime
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None


class DeliveriesRead(BaseModel):
    data: list[DeliveryRead]
    count: int
