"""The record of whether a finished job's version became the active one and why, and the
promotion gate: if_better judged by the RMSE of both versions on a later cohort."""

import dataclasses
import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core.errors import InvalidInput
from app.db.models import Cohort, Evaluation, Job, Model, ModelVersion
from app.schemas.jobs import JobCreate
from app.services import cohorts as cohort_service
from app.services import evaluations as evaluation_service
from app.services import models as model_service

LOC_GATE: list[str | int] = ["body", "gate_cohort_id"]


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What JobRead.activation and VersionRead.activation say (ActivationOutcome)."""

    activated: bool
    rule: str
    reason: str
    compared_with_version: int | None = None
    figures: dict[str, Any] = dataclasses.field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def check_gate(
    session: Session, organisation_id: uuid.UUID, body: JobCreate, cohort: Cohort
) -> None:
    """The job's gate cohort, checked when the job is created: the organisation's (404
    otherwise) with the training cohort's features and target (422 otherwise)."""
    if body.gate_cohort_id is None:
        return
    gate = evaluation_service.find_cohort(session, organisation_id, body.gate_cohort_id, LOC_GATE)
    evaluation_service.require_columns(
        [*cohort.features, cohort.target], gate, f"training cohort {cohort.name!r}", LOC_GATE
    )


def gate(session: Session, job: Job, model: Model, version: ModelVersion) -> Outcome:
    """The new version and the active one evaluated on the job's gate cohort (the active
    one's latest evaluation there if it has one); the new one wins only with a strictly
    lower RMSE, or when there is no active version. Computed here, in the worker, by the
    evaluations' own function, whatever the cohort's size (the request's limit is not a
    rule of the figures)."""
    assert job.gate_cohort_id is not None
    cohort = cohort_service.get_cohort(session, job.organisation_id, job.gate_cohort_id)
    if cohort is None:
        return Outcome(False, "gate", "gate cohort no longer exists; not activated")
    label = repr(cohort.name[:60])
    figures: dict[str, Any] = {
        "metric": "rmse",
        "cohort_id": str(cohort.id),
        "cohort_name": cohort.name,
    }
    try:
        new = evaluation_service.create_evaluation(
            session, model, version, cohort, key_id=job.created_by, loc=LOC_GATE
        )
    except InvalidInput as error:
        return Outcome(False, "gate", f"gate on {label}: {error.detail}"[:200], figures=figures)
    figures |= {"new": new.rmse, "new_evaluation_id": str(new.id)}
    if model.active_version is None:
        figures |= {"active": None, "active_evaluation_id": None}
        reason = f"gate on {label}: rmse {new.rmse:.6g}, first version of the model"
        return Outcome(True, "gate", reason, figures=figures)
    active = model_service.get_version(session, model, model.active_version)
    assert active is not None
    try:
        old = _latest(session, active, cohort) or evaluation_service.create_evaluation(
            session, model, active, cohort, key_id=job.created_by, loc=LOC_GATE
        )
    except InvalidInput as error:
        reason = f"gate on {label}: version {active.version} cannot be evaluated there "
        return Outcome(False, "gate", (reason + f"({error.detail})")[:200], active.version, figures)
    figures |= {"active": old.rmse, "active_evaluation_id": str(old.id)}
    better = new.rmse < old.rmse
    reason = (
        f"gate on {label}: rmse {new.rmse:.6g} {'<' if better else 'is not below'} "
        f"{old.rmse:.6g} of version {active.version}" + ("" if better else "; not activated")
    )
    return Outcome(better, "gate", reason, active.version, figures)


def _latest(session: Session, version: ModelVersion, cohort: Cohort) -> Evaluation | None:
    return session.scalars(
        select(Evaluation)
        .where(Evaluation.model_version_id == version.id, Evaluation.cohort_id == cohort.id)
        .order_by(Evaluation.created_at.desc(), Evaluation.id)
        .limit(1)
    ).first()
