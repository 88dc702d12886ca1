"""Per-key rate limits: token buckets held in each server process's memory.

Two buckets per API key: requests (``GRADECAST_RATE_LIMIT_PER_MINUTE``) and pupils
predicted (``GRADECAST_PREDICT_PUPILS_PER_MINUTE``). Each of ``GRADECAST_SERVER_PROCESSES``
processes enforces 1/N of each limit, so the whole server never lets more through, at the
cost of no database round trip per request. A bucket holds a minute's worth of its
process's share and refills continuously. Over a limit: 429 with ``Retry-After`` and the
``RateLimit-Policy`` / ``RateLimit`` fields of the IETF httpapi draft
(draft-ietf-httpapi-ratelimit-headers-10).

Every 429 (these and the queued-jobs quota's) is answered after ``REFUSAL_DELAY_SECONDS``
(``api.errors``): a client retrying in a tight loop is slowed to one try per connection per
second, instead of spending the server's CPU on refusals that other organisations'
requests would queue behind.
"""

import math
import threading
import time
import uuid
from dataclasses import dataclass, field

from app.core.config import Settings
from app.core.errors import TooManyRequests

WINDOW_SECONDS = 60
REFUSAL_DELAY_SECONDS = 1.0
_MAX_KEYS = 100_000


@dataclass
class TokenBucket:
    """``capacity`` tokens, refilled at ``capacity / WINDOW_SECONDS`` per second, by key."""

    name: str
    capacity: float
    setting: str
    # By the key's id as an int: it hashes in C, a UUID's hash is a Python call.
    _levels: dict[int, tuple[float, float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def rate(self) -> float:
        return self.capacity / WINDOW_SECONDS

    def take(self, key: uuid.UUID, cost: float) -> None:
        """Spend ``cost`` tokens of ``key``'s bucket, or raise TooManyRequests.

        A request costing more than a full bucket (a large /predict batch) goes through
        when the bucket is full and leaves it in debt, so it is never refused for ever."""
        now = time.monotonic()
        bucket = key.int
        with self._lock:
            level, then = self._levels.get(bucket, (self.capacity, now))
            level = min(self.capacity, level + (now - then) * self.rate)
            needed = min(cost, self.capacity)
            if level < needed:
                self._levels[bucket] = (level, now)
                raise self._refusal(math.ceil((needed - level) / self.rate))
            if len(self._levels) > _MAX_KEYS:
                self._levels.clear()
            self._levels[bucket] = (level - cost, now)

    def _refusal(self, retry_after: int) -> TooManyRequests:
        retry_after = max(1, retry_after)
        quota = max(1, math.floor(self.capacity))
        return TooManyRequests(
            f"rate limit: at most {quota} {self.name} per minute for this key on this "
            f"server process ({self.setting}); retry in {retry_after} s",
            loc=["header", "authorization"],
            headers={
                "Retry-After": str(retry_after),
                "RateLimit-Policy": f'"{self.name}";q={quota};w={WINDOW_SECONDS}',
                "RateLimit": f'"{self.name}";r=0;t={retry_after}',
            },
        )


@dataclass
class RateLimits:
    requests: TokenBucket
    pupils: TokenBucket

    @classmethod
    def from_settings(cls, settings: Settings) -> "RateLimits":
        share = settings.server_processes
        return cls(
            requests=TokenBucket(
                "requests",
                settings.rate_limit_per_minute / share,
                "GRADECAST_RATE_LIMIT_PER_MINUTE",
            ),
            pupils=TokenBucket(
                "pupils",
                settings.predict_pupils_per_minute / share,
                "GRADECAST_PREDICT_PUPILS_PER_MINUTE",
            ),
        )
