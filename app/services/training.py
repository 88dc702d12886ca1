"""What a training job means: its engine configuration, its plan, and what its result
becomes (a model version, activated or not). Workers run the loop; these decide."""

import dataclasses
import uuid
from collections.abc import Mapping
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from app.core.errors import InvalidInput
from app.db.models import Cohort, Job, JobStatus, Model, ModelVersion
from app.engine import (
    CrossValidation,
    FitResult,
    TrainingConfig,
    check_folds,
    fold_steps,
    options_used,
    planned_steps,
    risk,
    split_holdout,
)
from app.schemas.jobs import JobCreate, TrainingParameters
from app.services import activation
from app.services import jobs as job_service
from app.services import models as model_service

MAX_SGD_STEPS = 50_000_000
_CONFIG_FIELDS = tuple(field.name for field in dataclasses.fields(TrainingConfig))


def training_config(params: Mapping[str, Any]) -> TrainingConfig:
    """A job's hyperparameters (``TrainingParameters``, as stored) as the engine's config."""
    values = {name: params[name] for name in _CONFIG_FIELDS}
    if values["init_theta"] is not None:
        values["init_theta"] = tuple(values["init_theta"])
    return TrainingConfig(**values)


def kfold_folds(params: Mapping[str, Any]) -> int | None:
    """A job's number of folds when it cross-validates (validation=kfold), else None."""
    return int(params["folds"]) if params.get("validation") == "kfold" else None


def plan(config: TrainingConfig, cohort: Cohort, folds: int | None = None) -> int:
    """The steps the job will take on this cohort, once its options are checked against it.

    Raises the engine's InvalidConfigError / DegenerateDataError, which name the option.
    """
    config.validate(len(cohort.features))
    steps = planned_steps(cohort.n_students, config)
    if folds is not None:
        _check_kfold(config, cohort, folds)
        # sgd fits once per fold besides the final fit on every pupil.
        steps += fold_steps(cohort.n_students, config, folds)
    if config.algorithm == "sgd" and steps > MAX_SGD_STEPS:
        raise InvalidInput(
            f"{steps} SGD steps is more than the {MAX_SGD_STEPS:,} allowed; use fewer epochs "
            "or larger batches",
            loc=["body", "epochs"],
        )
    return steps


def _check_kfold(config: TrainingConfig, cohort: Cohort, folds: int) -> None:
    if config.validation_fraction > 0:
        raise InvalidInput(
            "validation=kfold fits the final Θ on every pupil: leave validation_fraction at 0",
            loc=["body", "validation_fraction"],
        )
    check_folds(cohort.n_students, folds)


def create_job(
    session: Session, organisation_id: uuid.UUID, body: JobCreate, cohort: Cohort, key_id: uuid.UUID
) -> Job:
    """Queue a job, its options checked once, against its cohort, by the engine's rules."""
    params = body.model_dump(include=set(TrainingParameters.model_fields))
    steps = plan(training_config(params), cohort, kfold_folds(params))
    activation.check_gate(session, organisation_id, body, cohort)
    job = Job(
        organisation_id=organisation_id,
        cohort_id=cohort.id,
        model_name=body.model,
        algorithm=body.algorithm,
        params=params,
        activate=body.activate,
        gate_cohort_id=body.gate_cohort_id,
        status=JobStatus.queued,
        steps_done=0,
        total_steps=steps,
        created_by=key_id,
    )
    session.add(job)
    session.flush()
    return job


def _feature_range(
    cohort: Cohort, X: np.ndarray, train_idx: np.ndarray
) -> tuple[list[float], list[float]]:
    """Each feature's min and max over the training rows. Without a hold-out those are all
    the cohort's rows, whose range its column statistics already hold (kept exact through
    erasures): no pass over a million rows. Otherwise a column at a time, several times
    faster than along axis 0 of the matrix."""
    stats = cohort.stats
    if len(train_idx) == X.shape[0] and all(name in stats for name in cohort.features):
        return (
            [float(stats[name]["min"]) for name in cohort.features],
            [float(stats[name]["max"]) for name in cohort.features],
        )
    train = X[train_idx]
    columns = range(train.shape[1])
    return [float(train[:, j].min()) for j in columns], [float(train[:, j].max()) for j in columns]


def complete_job(
    session: Session,
    job: Job,
    cohort: Cohort,
    grades: np.ndarray,
    result: FitResult,
    cross_validation: CrossValidation | None = None,
) -> ModelVersion:
    """Store the fit as a new version of the job's model, activate it if the job's rule
    says so, and mark the job succeeded; ``job`` is locked by the caller. A kfold job's
    ``cross_validation`` joins the version's metrics.

    Long because the version, its activation and the job's final figures are the steps of
    one transaction, read in order; split, they would pass the same arrays around."""
    X, y = grades[:, :-1], grades[:, -1]
    config = training_config(job.params)
    train_idx, val_idx = split_holdout(X.shape[0], config.validation_fraction, config.seed)
    feature_min, feature_max = _feature_range(cohort, X, train_idx)
    version = model_service.create_version(
        session,
        job.organisation_id,
        job.model_name,
        model_service.VersionSpec(
            features=list(cohort.features),
            feature_labels=list(cohort.feature_labels),
            target=cohort.target,
            grade_range=(cohort.grade_min, cohort.grade_max),
            theta=[float(w) for w in result.theta],
            # The version's σ is its interval's: a trained version's comes with the design,
            # or there is no honest interval (metrics keep the fit's σ).
            residual_std=None,
            n_train=len(train_idx),
            feature_min=feature_min,
            feature_max=feature_max,
            metrics=_metrics_dict(result)
            | ({} if cross_validation is None else cross_validation.to_json()),
            hyperparameters=options_used(job.params),
            source="job",
            cohort_id=cohort.id,
            cohort_name=cohort.name,
            job_id=job.id,
            interval_design=None if result.interval is None else result.interval.to_json(),
            warnings=list(result.warnings) or None,
        ),
        created_by=job.created_by,
    )
    # if_better compares on the job's hold-out, or on its training rows without one.
    # (Without a hold-out the training rows are all the rows.)
    if len(val_idx):
        _activate(session, job, version, X[val_idx], y[val_idx], "validation")
    else:
        _activate(session, job, version, X, y, "training")
    job.warnings = list(result.warnings) or None
    # Early stopping ends before the planned total; closed_form is one step.
    job.steps_done = job.total_steps = max(result.metrics.n_steps, 1) + (
        0 if cross_validation is None else cross_validation.n_steps
    )
    # The heartbeat publishes progress while the engine runs, not after its last chunk.
    job.epoch = int(result.history.epoch[-1])
    job.current_risk = result.metrics.train_mse
    # Last, so that job.succeeded tells the figures above.
    job_service.finish_job(job, JobStatus.succeeded, model_version=version.version)
    return version


def _activate(
    session: Session, job: Job, version: ModelVersion, X: np.ndarray, y: np.ndarray, rows: str
) -> None:
    """Activate the job's version if its rule (or its promotion gate) says so, and record
    why on the job and the version either way."""
    model = session.get_one(Model, version.model_id)
    assert job.activate is not None, "a training job has its rule"
    outcome = (
        activation.gate(session, job, model, version)
        if job.gate_cohort_id is not None
        else choose_activation(session, job.activate, model, version, X, y, rows)
    )
    if outcome.activated:
        model_service.set_active(
            session, model, version.version, key_id=job.created_by, reason=outcome.reason
        )
    job.activation = version.activation = outcome.to_json()


def choose_activation(
    session: Session,
    rule: str,
    model: Model,
    version: ModelVersion,
    X: np.ndarray,
    y: np.ndarray,
    rows: str = "training",
) -> activation.Outcome:
    """Whether ``version`` becomes the active one under ``rule``, and why. if_better
    compares the cross-validated RMSE when both versions have one (kfold jobs), else the
    risks on ``X``, ``y`` (the ``rows`` they are)."""
    if rule == "never":
        return activation.Outcome(False, rule, "activate=never")
    if rule == "always":
        return activation.Outcome(True, rule, "activate=always")
    if model.active_version is None:
        return activation.Outcome(True, rule, "first version of the model")
    active = model_service.get_version(session, model, model.active_version)
    if active is None or active.features != version.features:
        return activation.Outcome(
            False,
            rule,
            f"if_better: version {model.active_version} has other features; not activated",
            model.active_version,
        )
    new_cv, old_cv = (_cv_rmse(v.metrics) for v in (version, active))
    if new_cv is not None and old_cv is not None:
        figures = {"metric": "cv_rmse", "new": new_cv, "active": old_cv}
        if new_cv < old_cv:
            reason = f"if_better: cv_rmse {new_cv:.6g} < {old_cv:.6g} of version {active.version}"
            return activation.Outcome(True, rule, reason, active.version, figures)
        reason = (
            f"if_better: cv_rmse {new_cv:.6g} is not below {old_cv:.6g} of version "
            f"{active.version}; not activated"
        )
        return activation.Outcome(False, rule, reason, active.version, figures)
    new_risk = risk(np.asarray(version.theta), X, y)
    old_risk = risk(np.asarray(active.theta), X, y)
    figures = {"metric": "risk", "rows": rows, "new": float(new_risk), "active": float(old_risk)}
    if new_risk < old_risk:
        reason = f"if_better: risk {new_risk:.6g} < {old_risk:.6g} of version {active.version}"
        return activation.Outcome(True, rule, reason, active.version, figures)
    reason = (
        f"if_better: risk {new_risk:.6g} is not below {old_risk:.6g} of version "
        f"{active.version}; not activated"
    )
    return activation.Outcome(False, rule, reason, active.version, figures)


def _cv_rmse(metrics: Mapping[str, Any] | None) -> float | None:
    value = None if metrics is None else metrics.get("cv_rmse")
    return float(value) if isinstance(value, int | float) else None


def _metrics_dict(result: FitResult) -> dict[str, float | int | bool | None]:
    """The fit's figures as JSON: a non-finite float (no figure) is null."""
    values = dataclasses.asdict(result.metrics)
    return {
        k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in values.items()
    }
