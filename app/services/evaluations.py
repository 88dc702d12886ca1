"""Evaluations of a version on a later cohort: the figures are the engine's; this decides
which rows are evaluated, stores the result, and lines versions up on one cohort."""

import uuid
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core.config import Settings
from app.core.errors import Conflict, InvalidInput, NotFound
from app.db.models import Cohort, Evaluation, Job, JobKind, JobStatus, Model, ModelVersion
from app.db.paging import paginate
from app.db.students import load_groups
from app.engine import IntervalDesign
from app.engine.evaluation import EvaluatedVersion, evaluate
from app.services import audit
from app.services import cohorts as cohort_service
from app.services import jobs as job_service
from app.services import models as model_service
from app.services import webhooks as webhook_service

_LOC_COHORT: list[str | int] = ["body", "cohort_id"]


def evaluated_version(version: ModelVersion) -> EvaluatedVersion:
    def array(values: list[float] | None) -> np.ndarray | None:
        return None if values is None else np.asarray(values, dtype=np.float64)

    return EvaluatedVersion(
        theta=np.asarray(version.theta, dtype=np.float64),
        grade_range=(version.grade_min, version.grade_max),
        interval_design=None
        if version.interval_design is None
        else IntervalDesign.from_json(version.interval_design),
        residual_std=version.residual_std,
        n_train=version.n_train,
        feature_min=array(version.feature_min),
        feature_max=array(version.feature_max),
    )


def find_cohort(
    session: Session, organisation_id: uuid.UUID, cohort_id: uuid.UUID, loc: list[str | int]
) -> Cohort:
    """The organisation's cohort, or a 404 naming the field (another organisation's too)."""
    cohort = cohort_service.get_cohort(session, organisation_id, cohort_id)
    if cohort is None:
        raise NotFound("no such cohort", loc=loc)
    return cohort


def columns_for(version: ModelVersion, cohort: Cohort, loc: list[str | int]) -> list[int]:
    """Where the version's features, then its target, are among the cohort's columns (by
    API name); a 422 naming every missing one."""
    wanted = [*version.features, version.target]
    require_columns(wanted, cohort, f"version {version.version}", loc)
    columns = [*cohort.features, cohort.target]
    return [columns.index(name) for name in wanted]


def require_columns(wanted: list[str], cohort: Cohort, needer: str, loc: list[str | int]) -> None:
    """A 422 naming every one of ``wanted`` (API names) that the cohort lacks."""
    columns = [*cohort.features, cohort.target]
    missing = [name for name in wanted if name not in columns]
    if missing:
        raise InvalidInput(
            f"cohort {cohort.name!r} lacks what {needer} needs: "
            + ", ".join(repr(name) for name in missing)
            + f" (it has {', '.join(repr(c) for c in columns)})",
            loc=loc,
        )


def check_evaluable(version: ModelVersion, cohort: Cohort, loc: list[str | int]) -> None:
    """What makes an evaluation of ``version`` on ``cohort`` possible, checked before it is
    computed or queued: the version's columns (422 naming the missing ones) and pupils."""
    columns_for(version, cohort, loc)
    if cohort.n_students == 0:
        raise _no_pupils(cohort, loc)


def _no_pupils(cohort: Cohort, loc: list[str | int]) -> InvalidInput:
    return InvalidInput(f"cohort {cohort.name!r} has no pupils left", loc=loc)


def runs_in_request(cohort: Cohort, settings: Settings) -> bool:
    """Whether the cohort is evaluated within the request (201) rather than by a job (202):
    up to GRADECAST_SYNC_EVALUATION_LIMIT pupils."""
    return cohort.n_students <= settings.sync_evaluation_limit


def compute(
    session: Session, version: ModelVersion, cohort: Cohort, loc: list[str | int]
) -> dict[str, Any]:
    """The engine's figures of ``version`` on every pupil of ``cohort``, whatever its size
    (the request's limit is the caller's choice of path, not a rule of the figures)."""
    indices = columns_for(version, cohort, loc)
    grades = cohort_service.load_grades(session, cohort)
    if grades.shape[0] == 0:
        raise _no_pupils(cohort, loc)
    selected = grades[:, indices]
    groups = load_groups(session, cohort.id) if cohort.group_column is not None else None
    return evaluate(evaluated_version(version), selected[:, :-1], selected[:, -1], groups)


def create_evaluation(
    session: Session,
    model: Model,
    version: ModelVersion,
    cohort: Cohort,
    *,
    key_id: uuid.UUID | None,
    loc: list[str | int] = _LOC_COHORT,
) -> Evaluation:
    """Compute and store, in the caller's transaction (the request's, the promotion gate's)."""
    return store_evaluation(
        session, model, version, cohort, compute(session, version, cohort, loc), key_id=key_id
    )


def store_evaluation(
    session: Session,
    model: Model,
    version: ModelVersion,
    cohort: Cohort,
    figures: dict[str, Any],
    *,
    key_id: uuid.UUID | None,
) -> Evaluation:
    """The Evaluation row made of ``compute``'s figures, announced (audit, webhooks): the one
    place an evaluation is stored, whichever path computed it."""
    figures = dict(figures)
    sample = figures.pop("sample")
    evaluation = Evaluation(
        model_id=model.id,
        model_version_id=version.id,
        version=version.version,
        cohort_id=cohort.id,
        cohort_name=cohort.name,
        cohort_erased=False,
        n=figures.pop("n"),
        rmse=figures.pop("rmse"),
        figures=figures,
        sample=[list(pair) for pair in sample],
        created_by=key_id,
    )
    session.add(evaluation)
    session.flush()
    _announce(session, model, evaluation, key_id)
    return evaluation


# --- above the request's limit: an evaluation job -----------------------------------------

LOC_JOB: list[str | int] = ["job"]


def queue_evaluation(
    session: Session, model: Model, version: ModelVersion, cohort: Cohort, key_id: uuid.UUID
) -> Job:
    """An evaluation job, checked like the request's evaluation (``check_evaluable``) by the
    caller, and the job quota by the route; a worker computes and stores it."""
    job = Job(
        organisation_id=model.organisation_id,
        kind=JobKind.evaluation,
        cohort_id=cohort.id,
        model_name=model.name,
        model_version=version.version,
        algorithm=None,
        params={},
        activate=None,
        status=JobStatus.queued,
        steps_done=0,
        total_steps=1,
        created_by=key_id,
    )
    session.add(job)
    session.flush()
    audit.record(
        session,
        model.organisation_id,
        "job.queued",
        key_id=key_id,
        object=f"/jobs/{job.id}",
        figures={
            "kind": job.kind.value,
            "model": model.name,
            "version": version.version,
            "cohort": str(cohort.id),
        },
    )
    return job


def job_subject(session: Session, job: Job) -> tuple[Model, ModelVersion, Cohort]:
    """What an evaluation job evaluates, on what, as the database has them now; a NotFound
    saying which is gone (the job then fails with that sentence)."""
    if job.cohort_id is None:
        raise NotFound("the cohort of this evaluation was erased before it ran", loc=LOC_JOB)
    cohort = cohort_service.get_cohort(session, job.organisation_id, job.cohort_id)
    if cohort is None:
        raise NotFound("the cohort of this evaluation was erased before it ran", loc=LOC_JOB)
    model = model_service.get_model(session, job.organisation_id, job.model_name)
    if model is None:
        raise NotFound(f"model {job.model_name!r} no longer exists", loc=LOC_JOB)
    assert job.model_version is not None, "an evaluation job names its version"
    version = model_service.get_version(session, model, job.model_version)
    if version is None:
        raise NotFound(
            f"version {job.model_version} of model {job.model_name!r} no longer exists",
            loc=LOC_JOB,
        )
    return model, version, cohort


def complete_evaluation_job(session: Session, job: Job, figures: dict[str, Any]) -> Evaluation:
    """Store the figures a worker computed (outside this transaction, so that no write
    waits on it) and mark the job succeeded, linked to its evaluation; ``job`` is locked by
    the caller, which holds off the cohort's erasure until this commits."""
    model, version, cohort = job_subject(session, job)
    if cohort.n_students != figures["n"]:
        raise Conflict(
            f"pupils were erased from cohort {cohort.name!r} while it was evaluated; "
            "evaluate it again",
            loc=LOC_JOB,
        )
    evaluation = store_evaluation(session, model, version, cohort, figures, key_id=job.created_by)
    job.evaluation_id = evaluation.id
    job.steps_done = job.total_steps
    job_service.finish_job(job, JobStatus.succeeded, model_version=version.version)
    return evaluation


def _announce(
    session: Session, model: Model, evaluation: Evaluation, key_id: uuid.UUID | None
) -> None:
    """evaluation.created, in the transaction that stores it: to the audit trail and to the
    organisation's webhooks (ids and aggregates, never the sample)."""
    where = f"/models/{model.name}/versions/{evaluation.version}/evaluations"
    figures: dict[str, audit.Figure] = {
        "cohort": str(evaluation.cohort_id),
        "n": evaluation.n,
        "rmse": evaluation.rmse,
    }
    audit.record(
        session,
        model.organisation_id,
        "evaluation.created",
        key_id=key_id,
        object=where,
        figures=figures,
    )
    webhook_service.enqueue(
        session,
        model.organisation_id,
        "evaluation.created",
        {
            "evaluation_id": str(evaluation.id),
            "model": model.name,
            "version": evaluation.version,
            "cohort_id": str(evaluation.cohort_id),
            "n": evaluation.n,
            "rmse": evaluation.rmse,
            "mean_error": evaluation.figures.get("mean_error"),
            "interval_coverage": evaluation.figures.get("interval_coverage"),
        },
    )


def get_evaluation(
    session: Session, version: ModelVersion, evaluation_id: uuid.UUID
) -> Evaluation | None:
    return session.scalars(
        select(Evaluation).where(
            Evaluation.id == evaluation_id, Evaluation.model_version_id == version.id
        )
    ).one_or_none()


def list_version_evaluations(
    session: Session, version: ModelVersion, limit: int, offset: int
) -> tuple[list[Evaluation], int]:
    """Newest first."""
    query = select(Evaluation).where(Evaluation.model_version_id == version.id)
    return paginate(
        session, query, Evaluation.created_at.desc(), Evaluation.id, limit=limit, offset=offset
    )


def leaderboard(session: Session, model: Model, cohort_id: uuid.UUID) -> list[Evaluation]:
    """The latest evaluation of each version of the model on the cohort, best RMSE first
    (ties: the newer version first)."""
    evaluations = session.scalars(
        select(Evaluation)
        .where(Evaluation.model_id == model.id, Evaluation.cohort_id == cohort_id)
        .order_by(Evaluation.created_at.desc(), Evaluation.id)
    ).all()
    latest: dict[int, Evaluation] = {}
    for evaluation in evaluations:
        latest.setdefault(evaluation.version, evaluation)
    return sorted(latest.values(), key=lambda e: (e.rmse, -e.version))
