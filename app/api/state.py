"""What the running service holds: settings, database, caches. Built by the lifespan; the
API layer reads it through `api.deps`."""

import threading
import time
import uuid
from dataclasses import dataclass, field

from app.api.ratelimit import RateLimits
from app.api.shutdown import Drain
from app.core.config import Settings
from app.core.metrics import ServiceMetrics
from app.db.models import Role
from app.db.session import Database
from app.services.audit import PredictCounts
from app.services.model_cache import ModelCache


@dataclass(frozen=True)
class Principal:
    """Who is calling: a verified API key, its organisation and its role."""

    key_id: uuid.UUID
    organisation_id: uuid.UUID
    role: Role


@dataclass
class AuthCache:
    """Verified keys by digest, trusted for ``ttl`` seconds (revocation is seen within it)."""

    ttl: float
    _entries: dict[str, tuple[float, Principal]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, digest: str) -> Principal | None:
        entry = self._entries.get(digest)
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[1]

    def put(self, digest: str, principal: Principal) -> None:
        with self._lock:
            if len(self._entries) > 10_000:
                self._entries.clear()
            self._entries[digest] = (time.monotonic() + self.ttl, principal)

    def forget(self, key_id: uuid.UUID) -> None:
        with self._lock:
            for digest, (_, principal) in list(self._entries.items()):
                if principal.key_id == key_id:
                    del self._entries[digest]


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
