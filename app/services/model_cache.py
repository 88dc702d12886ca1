"""Model versions in memory, so that /predict reads the database only to learn of changes.

Θ never changes once a version is created, so ``(organisation, model, version)`` →
snapshot is cached. What changes is which version is active: that pointer is cached too,
and at most every ``model_cache_seconds`` one indexed read of ``MAX(id)`` of the
activations (and of the cohort erasures) tells whether any model of any organisation was
(re)activated since; only then are the changed models' pointers re-read. A cohort erasure
changes the provenance of the versions trained on it (their ``cohort_id`` is cleared), so
it drops the cached snapshots. Every process (uvicorn worker, host)
therefore answers with a new active version within that interval, and a request resolves
its version once, so one response never mixes two versions.

The check runs in a background task of each process (``refresh``, every half interval, see
``app.main``), so a request never waits for it; a request checks inline only when the
background task has not succeeded for a whole interval (the database is down, or no task).

All mutations happen on the event loop thread; database reads run in worker threads.
"""

import asyncio
import math
import time
import uuid
from dataclasses import dataclass, field

from fastapi.concurrency import run_in_threadpool
from sqlalchemy import ScalarSelect, event, func, select
from sqlalchemy.orm import Session

from app.core.errors import Conflict, NotFound
from app.db.models import Activation, CohortErasure, Model, ModelVersion
from app.db.session import Database
from app.services.predict import VersionSnapshot

MAX_CACHED_VERSIONS = 10_000


@dataclass(frozen=True)
class _Pointer:
    exists: bool
    active_version: int | None
    as_of_activation: int


@dataclass
class ModelCache:
    # Keyed by the organisation's id as an int: it hashes in C, a UUID's hash is a Python
    # call, and these are looked up on every /predict.
    _versions: dict[tuple[int, str, int], VersionSnapshot] = field(default_factory=dict)
    _active: dict[tuple[int, str], int | None] = field(default_factory=dict)
    _seen_activation: int = -1
    _seen_erasure: int = -1
    _checked_at: float = -math.inf
    _lock: asyncio.Lock | None = None

    def invalidate(self) -> None:
        """Check for activations and erasures at the next request."""
        self._checked_at = -math.inf

    def invalidate_after_commit(self, session: Session) -> None:
        """This process sees the session's activation or erasure at its next request, other
        processes within ``model_cache_seconds``."""
        event.listen(session, "after_commit", lambda _s: self.invalidate(), once=True)

    async def resolve(
        self,
        db: Database,
        max_age: float,
        organisation_id: uuid.UUID,
        name: str,
        version: int | None,
        *,
        source: str = "body",
    ) -> VersionSnapshot:
        """The version to use: the pinned one, or the active one as of ≤ max_age ago."""
        if time.monotonic() - self._checked_at >= max_age:
            await self._refresh(db, max_age)
        if version is None:
            version = await self._active_version(db, organisation_id, name, source)
        key = (organisation_id.int, name, version)
        cached = self._versions.get(key)
        if cached is not None:
            return cached
        snapshot, as_of_erasure = await run_in_threadpool(
            _load_version, db, organisation_id, name, version, source
        )
        if len(self._versions) >= MAX_CACHED_VERSIONS:
            self._versions.clear()
        # As for pointers: kept only if no erasure was seen that it may predate.
        if as_of_erasure >= self._seen_erasure:
            self._versions[key] = snapshot
        return snapshot

    async def _active_version(
        self, db: Database, organisation_id: uuid.UUID, name: str, source: str
    ) -> int:
        key = (organisation_id.int, name)
        if key in self._active:
            active = self._active[key]
        else:
            pointer = await run_in_threadpool(_load_pointer, db, organisation_id, name)
            if not pointer.exists:
                raise NotFound(f"no model named {name!r}", loc=[source, "model"])
            active = pointer.active_version
            # Stored only if no refresh has gone past the activations it saw: a later
            # refresh updates it, an earlier one could have missed it.
            if pointer.as_of_activation >= self._seen_activation:
                self._active[key] = active
        if active is None:
            raise Conflict(
                f"model {name!r} has no active version; activate one with "
                f"PUT /models/{name}/active or pin a version",
                loc=[source, "model"],
            )
        return active

    async def refresh(self, db: Database) -> None:
        """Check for activations and erasures now (the background task's call)."""
        await self._refresh(db, 0.0)

    def refresh_interval(self, max_age: float) -> float:
        return max_age / 2

    async def _refresh(self, db: Database, max_age: float) -> None:
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            # Another request may have refreshed while this one waited for the lock.
            if time.monotonic() - self._checked_at < max_age:
                return
            started = time.monotonic()
            # asyncio's own threads, not the request pool that big batches may fill.
            latest, erased, changed = await asyncio.to_thread(
                _read_changes, db, self._seen_activation
            )
            for (organisation_id, name), active in changed.items():
                key = (organisation_id.int, name)
                if key in self._active:
                    self._active[key] = active
            if erased != self._seen_erasure:
                self._versions.clear()
            self._seen_activation = latest
            self._seen_erasure = erased
            self._checked_at = started


def _latest_erasure() -> ScalarSelect[int]:
    return select(func.coalesce(func.max(CohortErasure.id), 0)).scalar_subquery()


def _read_changes(
    db: Database, seen: int
) -> tuple[int, int, dict[tuple[uuid.UUID, str], int | None]]:
    with db.reads() as session:
        latest, erased = session.execute(
            select(func.coalesce(func.max(Activation.id), 0), _latest_erasure())
        ).one()
        if latest == seen or seen < 0:
            return latest, erased, {}
        changed_models = select(Activation.model_id).where(
            Activation.id > seen, Activation.id <= latest
        )
        rows = session.execute(
            select(Model.organisation_id, Model.name, Model.active_version).where(
                Model.id.in_(changed_models)
            )
        )
        return latest, erased, {(org, name): active for org, name, active in rows}


def _load_pointer(db: Database, organisation_id: uuid.UUID, name: str) -> _Pointer:
    # One statement, so the pointer and the activation id it is as of come from one snapshot.
    latest = select(func.coalesce(func.max(Activation.id), 0)).scalar_subquery()
    with db.reads() as session:
        row = session.execute(
            select(Model.active_version, latest).where(
                Model.organisation_id == organisation_id, Model.name == name
            )
        ).one_or_none()
        if row is None:
            return _Pointer(exists=False, active_version=None, as_of_activation=0)
        return _Pointer(exists=True, active_version=row[0], as_of_activation=row[1])


def _load_version(
    db: Database, organisation_id: uuid.UUID, name: str, version: int, source: str
) -> tuple[VersionSnapshot, int]:
    """The version, and the latest erasure it reflects (read in the same statement)."""
    with db.reads() as session:
        row = session.execute(
            select(Model.id, ModelVersion, _latest_erasure())
            .outerjoin(
                ModelVersion,
                (ModelVersion.model_id == Model.id) & (ModelVersion.version == version),
            )
            .where(Model.organisation_id == organisation_id, Model.name == name)
        ).one_or_none()
    if row is None:
        raise NotFound(f"no model named {name!r}", loc=[source, "model"])
    if row[1] is None:
        raise NotFound(f"model {name!r} has no version {version}", loc=[source, "version"])
    return VersionSnapshot.of(name, row[1]), row[2]
