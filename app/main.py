"""The FastAPI application: built by ``create_app``, started by its lifespan."""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

from fastapi import Depends, FastAPI

from app.api.deps import no_unknown_query_parameters
from app.api.errors import install_error_handlers
from app.api.limits import BodySizeLimit
from app.api.middleware import RequestObservability
from app.api.routes import cohorts, evaluations, health, jobs, keys, metrics, models, predict
from app.api.routes.docs import mount_api_docs
from app.api.routes.ui import mount_dashboard
from app.api.shutdown import CloseWhileDraining, Drain
from app.api.state import AppState, AuthCache
from app.core.config import Settings, get_settings
from app.core.metrics import ServiceMetrics
from app.db.session import open_database, write_session
from app.services import jobs as job_service
from app.services.keys import ensure_bootstrap_key
from app.worker.runner import WorkerPool

logger = logging.getLogger("gradecast")

DESCRIPTION = """
gradecast learns, from a past cohort of pupils, a linear model of an end-of-year exam grade
(the *concours*) from course grades: h_Θ(x) = w0 + Σ wj·xj, fitted by minimising the
empirical risk R(Θ) = (1/n) Σ (h_Θ(xi) − yi)² with gradient descent or mini-batch SGD.

Every endpoint but `/healthz` and `/readyz` needs `Authorization: Bearer <API key>`.
Errors share one shape: `{"detail": "...", "code": "...", "errors": [{"loc": [...], ...}]}`.
"""


def build_state(settings: Settings, metrics: ServiceMetrics, drain: Drain) -> AppState:
    state = AppState(
        settings=settings,
        db=open_database(settings),
        auth_cache=AuthCache(ttl=settings.auth_cache_seconds),
        metrics=metrics,
        drain=drain,
    )
    state.metrics.watch_jobs(partial(job_service.count_by_status, state.db))
    return state


def _bootstrap(state: AppState) -> None:
    key = state.settings.bootstrap_admin_key
    if key is None:
        return
    try:
        with write_session(state.db) as session:
            if ensure_bootstrap_key(session, key.get_secret_value()):
                logger.info("bootstrap admin key created in organisation 'default'")
    except Exception:
        logger.exception("could not create the bootstrap admin key (is the database migrated?)")


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    state = build_state(app.state.settings, app.state.metrics, app.state.drain)
    app.state.gradecast = state
    state.drain.install(state.settings.shutdown_drain_seconds)
    _bootstrap(state)
    port = state.settings.metrics_port
    stop_metrics_server = state.metrics.serve(port) if port is not None else None
    pool = WorkerPool(state.db, state.settings, state.settings.workers, state.metrics.jobs)
    pool.start()
    try:
        yield
    finally:
        pool.stop()
        if stop_metrics_server is not None:
            stop_metrics_server()
        state.db.engine.dispose()


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    app = FastAPI(
        title="gradecast",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        # Served by mount_api_docs from vendored assets, not from FastAPI's CDNs.
        docs_url=None,
        redoc_url=None,
        dependencies=[Depends(no_unknown_query_parameters)],
    )
    # Nothing is connected here: the lifespan opens the database and starts the workers.
    app.state.settings = settings
    app.state.metrics = ServiceMetrics()
    app.state.drain = Drain()
    install_error_handlers(app)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(CloseWhileDraining, drain=app.state.drain)
    # Added last, so outermost: it also sees the 413s of BodySizeLimit.
    app.add_middleware(RequestObservability, metrics=app.state.metrics)
    app.include_router(health.router)
    app.include_router(keys.router)
    app.include_router(cohorts.router)
    app.include_router(models.router)
    app.include_router(evaluations.router)
    app.include_router(predict.router)
    app.include_router(jobs.router)
    if settings.metrics_port is None:
        app.include_router(metrics.router)
    mount_api_docs(app)
    mount_dashboard(app)
    return app
