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
        description="How many /predict bodies over 64 KB (OIP v2 bodies over 512 KB) one "
        "server process parses and answers at once; the others wait their turn (their memory "
        "is not yet spent).",
    )
    workers: int = Field(default=1, ge=0, description="In-process training workers.")
    sync_evaluation_limit: int = Field(
        default=200_000,
        ge=0,
        description="Pupils up to which an evaluation is computed within the request (201); "
        "a larger cohort's is queued as an evaluation job (202) that a worker computes.",
    )
    job_lease_seconds: float = Field(
        default=30.0, gt=0, description="A running job whose heartbeat is older is re-queued."
    )
    job_max_attempts: int = Field(default=3, ge=1)
    job_wait_seconds: float = Field(
        default=30.0,
        ge=0,
        le=30,
        description="The longest GET /jobs/{id}?wait= holds a request before it answers with "
        "the job as it is (a larger wait is cut to this): below the idle timeout of the "
        "proxies in front.",
    )
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
    audit_retention_days: int | None = Field(
        default=None,
        ge=1,
        le=36_500,
        description="Audit events older than this many days are pruned by the workers; "
        "unset: kept for the lifetime of the service.",
    )
    audit_flush_seconds: float = Field(
        default=5.0,
        gt=0,
        le=300,
        description="How often each server process writes its /predict audit counts.",
    )
    cohort_retention_days: int | None = Field(
        default=None,
        ge=1,
        le=36_500,
        description="Default retain_until of an uploaded cohort: this many days after the "
        "upload; unset: kept until deleted (an upload can still set its own).",
    )
    housekeeping_seconds: float = Field(
        default=60.0,
        gt=0,
        description="How often a worker runs the retention sweeps (expired cohorts, old "
        "audit events, stored idempotent answers older than 24 h).",
    )
    log_level: str = "INFO"
    sqlite_busy_timeout_ms: int = Field(default=30_000, ge=0)
    # --- webhooks, quotas and rate limits (README: Integrating) ---
    webhook_allow_http: bool = Field(
        default=False, description="Accept http:// webhook URLs (default: https only)."
    )
    webhook_allow_private: bool = Field(
        default=False,
        description="Deliver to loopback, link-local and private addresses (refused by "
        "default: server-side request forgery).",
    )
    webhook_retry_seconds: float = Field(
        default=24 * 3600.0,
        gt=0,
        description="How long a delivery is retried (exponential backoff, jitter) before "
        "it is marked failed.",
    )
    webhook_backoff_seconds: float = Field(
        default=5.0, gt=0, le=3600, description="The first retry's delay; doubled each time."
    )
    max_active_jobs: int = Field(
        default=100, ge=1, description="Queued and running jobs an organisation may have."
    )
    max_stored_pupils: int = Field(
        default=20_000_000, ge=1, description="Pupils an organisation's cohorts may hold."
    )
    max_cohorts: int = Field(default=10_000, ge=1, description="Cohorts an organisation may hold.")
    rate_limit_per_minute: int = Field(
        default=60_000, ge=1, description="Requests per minute per API key (token bucket)."
    )
    predict_pupils_per_minute: int = Field(
        default=6_000_000, ge=1, description="Pupils predicted per minute per API key."
    )
    server_processes: int = Field(
        default=1,
        ge=1,
        description="Server processes sharing the rate limits: each enforces 1/N of them "
        "(`gradecast serve --workers N` sets it).",
    )

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
