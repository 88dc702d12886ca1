"""Service configuration, read from ``GRADECAST_*`` environment variables."""

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

MIB = 1024 * 1024


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GRADECAST_", extra="ignore")

    data_dir: Path = Field(
        default=Path("data"),
        description="Directory of the embedded SQLite database and of the generated admin key.",
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; default sqlite:///<data_dir>/gradecast.db. "
        "PostgreSQL: postgresql+psycopg://user@host:5432/db.",
    )
    bootstrap_admin_key: SecretStr | None = Field(
        default=None,
        description="An admin key of organisation 'default' created at start if it does not exist.",
    )
    max_body_bytes: int = Field(default=64 * MIB, gt=0)
    max_cohort_rows: int = Field(default=1_000_000, gt=1)
    max_predict_rows: int = Field(default=10_000, gt=0)
    predict_batches_in_flight: int = Field(
        default=2,
        ge=1,
        le=64,
        description="How many /predict bodies over 64 KB one server process parses and "
        "answers at once; the others wait their turn (their memory is not yet spent).",
    )
    workers: int = Field(default=1, ge=0, description="In-process training workers.")
    job_lease_seconds: float = Field(
        default=30.0, gt=0, description="A running job whose heartbeat is older is re-queued."
    )
    job_max_attempts: int = Field(default=3, ge=1)
    auth_cache_seconds: float = Field(
        default=1.0, ge=0, description="How long a verified key is trusted without a database read."
    )
    model_cache_seconds: float = Field(
        default=0.5, ge=0, description="How often /predict checks that the active version changed."
    )
    metrics_token: SecretStr | None = Field(
        default=None, description="When set, GET /metrics requires 'Authorization: Bearer <token>'."
    )
    metrics_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="When set, /metrics is served on this port (all interfaces, no token) "
        "by prometheus_client's own server instead of on the API.",
    )
    id_pepper: SecretStr | None = Field(
        default=None,
        description="A server secret: when set, pupils' ids (INE or other) are stored only as "
        "a keyed hash (HMAC-SHA256) of it, the same for an id in every cohort of an "
        "organisation. Keep it: without it, ids already stored cannot be matched again.",
    )
    shutdown_drain_seconds: float = Field(
        default=2.0,
        ge=0,
        le=60,
        description="On SIGTERM, how long a server process keeps answering (each answer "
        "closing its connection, /readyz 503) before it stops.",
    )
    log_level: str = "INFO"
    sqlite_busy_timeout_ms: int = Field(default=30_000, ge=0)

    @property
    def pepper(self) -> bytes | None:
        return None if self.id_pepper is None else self.id_pepper.get_secret_value().encode()

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'gradecast.db').as_posix()}"


@lru_cache
def get_settings() -> Settings:
    return Settings()
