"""Evaluations of a version on a later cohort: the figures are the engine's; this decides
which rows are evaluated, stores the result, and lines versions up on one cohort."""

import uuid
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core.errors import InvalidInput, NotFound, PayloadTooLarge
from app.db.models import Cohort, Evaluation, Model, ModelVersion
from app.db.paging import paginate
from app.db.students import load_groups
from app.engine import IntervalDesign
from app.engine.evaluation import EvaluatedVersion, evaluate
from app.services import audit
from app.services import cohorts as cohort_service
from app.services import webhooks as webhook_service

# Pupils evaluated within the request; a larger cohort is refused with a 413 naming it.
SYNC_EVALUATION_LIMIT = 200_000

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


def compute(
    session: Session, version: ModelVersion, cohort: Cohort, loc: list[str | int]
) -> dict[str, Any]:
    """The engine's figures of ``version`` on every pupil of ``cohort``."""
    indices = columns_for(version, cohort, loc)
    if cohort.n_students > SYNC_EVALUATION_LIMIT:
        raise PayloadTooLarge(
            f"cohort {cohort.name!r} has {cohort.n_students} pupils; evaluations are computed "
            f"within the request up to {SYNC_EVALUATION_LIMIT:,} pupils",
            loc=loc,
        )
    grades = cohort_service.load_grades(session, cohort)
    if grades.shape[0] == 0:
        raise InvalidInput(f"cohort {cohort.name!r} has no pupils left", loc=loc)
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
    figures = compute(session, version, cohort, loc)
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
