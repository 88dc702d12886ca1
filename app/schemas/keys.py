import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from app.db.models import Role
from app.schemas.common import PRINTABLE_PATTERN, StrictModel


class ApiKeyCreate(StrictModel):
    name: str = Field(
        min_length=1, max_length=100, pattern=PRINTABLE_PATTERN, examples=["pronote integration"]
    )
    role: Role = Field(examples=["reader"])


class ApiKeyRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    role: Role
    created_at: datetime
    revoked_at: datetime | None


class ApiKeyCreated(ApiKeyRead):
    key: str = Field(description="The key itself. Shown once: it is stored only as a hash.")


class ApiKeysRead(BaseModel):
    data: list[ApiKeyRead]
    count: int


class WhoAmI(BaseModel):
    key_id: uuid.UUID
    organisation_id: uuid.UUID
    organisation: str
    role: Role
