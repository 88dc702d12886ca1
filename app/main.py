"""The FastAPI application: built by ``create_app``, started by its lifespan."""

import asyncio
import gc
import logging
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from functools import partial

from fastapi import FastAPI
from fastapi.routing import APIRoute

from app.api.errors import install_error_handlers
from app.api.limits import BodySizeLimit
from app.api.middleware import RequestObservability
from app.api.ratelimit import RateLimits
from app.api.routes import (
    audit,
    cohorts,
    evaluations,
    health,
    jobs,
    keys,
    metrics,
    models,
    oip,
    predict,
    webhooks,
)
from app.api.routes.docs import mount_api_docs
from app.api.routes.ui import mount_dashboard
from app.api.routing import Route
from app.api.shutdown import CloseWhileDraining, Drain
from app.api.state import AppState, AuthCache, refresh_forever
from app.core.config import Settings, get_settings
from app.core.logging import configure_logging
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
        rate_limits=RateLimits.from_settings(settings),
        big_batches=asyncio.Semaphore(settings.predict_batches_in_flight),
        batch_pool=ThreadPoolExecutor(
            settings.predict_batches_in_flight, thread_name_prefix="gradecast-batch"
        ),
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


def start_cache_refreshes(state: AppState) -> list[asyncio.Task[None]]:
    """The background refreshes of this process's caches (none for a cache turned off)."""
    tasks = []
    auth = state.auth_cache
    if auth.ttl > 0:
        refresh_auth = partial(auth.refresh, state.db)
        tasks.append(
            asyncio.create_task(refresh_forever("auth", auth.refresh_interval, refresh_auth))
        )
    max_age = state.settings.model_cache_seconds
    if max_age > 0:
        interval = state.model_cache.refresh_interval(max_age)
        refresh_models = partial(state.model_cache.refresh, state.db)
        tasks.append(asyncio.create_task(refresh_forever("models", interval, refresh_models)))
    return tasks


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    state = build_state(app.state.settings, app.state.metrics, app.state.drain)
    app.state.gradecast = state
    state.drain.install(state.settings.shutdown_drain_seconds)
    _bootstrap(state)
    port = state.settings.metrics_port
    stop_metrics_server = state.metrics.serve(port) if port is not None else None
    # A job that finishes in this process is seen by its /predict at the next request (jobs
    # take milliseconds: the cache's periodic check would serve the previous version).
    pool = WorkerPool(
        state.db,
        state.settings,
        state.settings.workers,
        state.metrics.jobs,
        state.metrics.deliveries,
        on_version=state.model_cache.invalidate,
    )
    pool.start()
    state.predict_counts.start(state.db, state.settings.audit_flush_seconds)
    refreshes = start_cache_refreshes(state)
    # What start-up made lives as long as the process: out of the collector's sight, a full
    # collection no longer walks it (one took tens of ms, a p99 10x the p50).
    gc.freeze()
    try:
        yield
    finally:
        for task in refreshes:
            task.cancel()
        await asyncio.gather(*refreshes, return_exceptions=True)
        pool.stop()
        state.predict_counts.stop(state.db)
        state.batch_pool.shutdown(wait=True)
        if stop_metrics_server is not None:
            stop_metrics_server()
        state.db.engine.dispose()


def served_app() -> FastAPI:
    """The app as `gradecast serve` runs it, in each of its processes: logs configured, then
    the app. uvicorn's `--workers` processes are spawned afresh, so the CLI's own logging
    set-up reaches only the parent (with 2 workers, no access line was ever written)."""
    settings = get_settings()
    configure_logging(settings.log_level)
    return create_app(settings)


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
        # FastAPI's native OpenTelemetry is off: gradecast observes itself through its access
        # line and Prometheus metrics, whose fields are chosen to carry no pupil's data (FastAPI's
        # validation logs would), and with no provider set it still checked the global ones on
        # every request (14 µs of a 136-µs /predict).
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    # The routes declared on the app itself (the docs pages) get the checks of every route.
    app.router.route_class = Route
    # Nothing is connected here: the lifespan opens the database and starts the workers.
    app.state.settings = settings
    app.state.metrics = ServiceMetrics()
    app.state.drain = Drain()
    install_error_handlers(app)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(CloseWhileDraining, drain=app.state.drain)
    # Added last, so outermost: it also sees the 413s of BodySizeLimit.
    app.add_middleware(RequestObservability, metrics=app.state.metrics)
    # The hot routes first, on the app's own router: the router tries the routes in order.
    predict.add_routes(app)
    health.add_routes(app)
    app.include_router(health.router)
    app.include_router(oip.router)
    app.include_router(keys.router)
    app.include_router(cohorts.router)
    app.include_router(models.router)
    app.include_router(evaluations.router)
    app.include_router(jobs.router)
    app.include_router(audit.router)
    app.include_router(webhooks.router)
    if settings.metrics_port is None:
        app.include_router(metrics.router)
    mount_api_docs(app)
    mount_dashboard(app)
    unchecked = [r.path for r in app.routes if isinstance(r, APIRoute) and not isinstance(r, Route)]
    if unchecked:
        raise RuntimeError(f"routes without the checks of app.api.routing.Route: {unchecked}")
    return app
