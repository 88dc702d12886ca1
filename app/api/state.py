"""What the running service holds: settings, database, caches. Built by the lifespan; the
API layer reads it through `api.deps`."""

import asyncio
import functools
import logging
import math
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from app.api.ratelimit import RateLimits
from app.api.shutdown import Drain
from app.core.config import Settings
from app.core.metrics import ServiceMetrics
from app.db.base import utcnow
from app.db.models import Role
from app.db.session import Database
from app.services.audit import PredictCounts
from app.services.keys import revoked_since
from app.services.model_cache import ModelCache
from app.services.predict import VersionSnapshot

logger = logging.getLogger("gradecast")

# Revocations are read back this far before the previous read, so that a revocation whose
# transaction was still open then, or a host whose clock is behind, is not missed.
_REVOCATION_OVERLAP = timedelta(seconds=60)


@dataclass(frozen=True)
class Principal:
    """Who is calling: a verified API key, its organisation and its role."""

    key_id: uuid.UUID
    organisation_id: uuid.UUID
    role: Role

    @functools.cached_property
    def organisation_label(self) -> str:
        """The organisation's id as text (the access line's), made once per cached key
        rather than once per request."""
        return str(self.organisation_id)


@dataclass
class AuthCache:
    """Verified keys by digest. A key is trusted for ``ttl`` seconds after the last
    database read that vouched for it: its own lookup, or the last background refresh
    (``refresh``, every ``ttl / 3``) that found no revocation of it. So a request never
    waits for the database on a hit, and a revocation reaches every process within
    ``ttl``; if the refreshes fail, every entry expires ``ttl`` after the last good one."""

    ttl: float
    _entries: dict[str, tuple[float, Principal]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _vouched_at: float = -math.inf  # monotonic start of the last successful refresh
    _revocations_since: datetime | None = None

    @property
    def refresh_interval(self) -> float:
        return self.ttl / 3

    def get(self, digest: str) -> Principal | None:
        entry = self._entries.get(digest)
        if entry is None or max(entry[0], self._vouched_at) + self.ttl <= time.monotonic():
            return None
        return entry[1]

    def put(self, digest: str, principal: Principal, verified_at: float) -> None:
        """``verified_at``: a ``time.monotonic()`` reading taken before the lookup."""
        if self.ttl <= 0:
            return
        with self._lock:
            if len(self._entries) > 10_000:
                self._entries.clear()
            self._entries[digest] = (verified_at, principal)

    def forget(self, key_id: uuid.UUID) -> None:
        with self._lock:
            for digest, (_, principal) in list(self._entries.items()):
                if principal.key_id == key_id:
                    del self._entries[digest]

    async def refresh(self, db: Database) -> None:
        """Drop the keys revoked since the previous refresh (read with an overlap), then
        vouch for the others as of this refresh's start."""
        started, now = time.monotonic(), utcnow()
        since = self._revocations_since or now
        revoked = await asyncio.to_thread(revoked_since, db, since - _REVOCATION_OVERLAP)
        for key_id in revoked:
            self.forget(key_id)
        self._revocations_since = now
        self._vouched_at = started


async def refresh_forever(
    name: str, interval: float, refresh: Callable[[], Awaitable[None]]
) -> None:
    """One background task per process and cache: ``refresh`` every ``interval`` seconds,
    never on a request's path. A failed refresh is logged; the caches then age out."""
    while True:
        try:
            await refresh()
        except Exception as exc:
            logger.warning(
                "cache refresh failed", extra={"cache": name, "error": type(exc).__name__}
            )
        await asyncio.sleep(interval)


@dataclass
class AppState:
    settings: Settings
    db: Database
    auth_cache: AuthCache
    metrics: ServiceMetrics
    drain: Drain
    rate_limits: RateLimits
    model_cache: ModelCache = field(default_factory=ModelCache)
    predict_counts: PredictCounts = field(default_factory=PredictCounts)
    # Big /predict bodies parsed and answered at once (GRADECAST_PREDICT_BATCHES_IN_FLIGHT),
    # and the threads that do it.
    big_batches: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(2))
    batch_pool: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(2, thread_name_prefix="gradecast-batch")
    )

    def count_predictions(
        self, principal: Principal, snapshot: VersionSnapshot, pupils: int, skipped: int = 0
    ) -> None:
        """Answered pupils, in the metrics and in the audit trail's per-minute counts (both
        in memory: nothing on the request's path waits for the database)."""
        self.metrics.predicted(snapshot.model, snapshot.version, pupils, skipped)
        self.predict_counts.add(principal, snapshot.model, snapshot.version, pupils)
