"""Metrics, request ids and logs, over real HTTP: /metrics moves with the traffic, is
protected by its token or moved to its own port, and no log record ever carries a
pupil's id, a grade or a key."""

import asyncio
import io
import json
import logging
import os
import re
import time
import uuid
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO
from unittest import mock

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from app.api.middleware import RandomIds
from app.core.logging import (
    BatchedLines,
    JsonLines,
    RequestIdFilter,
    configure_logging,
    direct_lines,
    request_id,
)
from app.db.migrations import upgrade_to_head
from app.db.models import Role
from tests.conftest import LiveServer, Tenant, free_port, make_settings, make_tenant, start_server

FEATURES = ["maths", "info", "francais"]
CLIENT_LOGGERS = frozenset({"httpx", "httpcore"})
HAND_SET_VERSION = {
    "features": FEATURES,
    "target": "concours",
    "theta": [0, 0.33, 0.33, 0.33],
    "activate": True,
}


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample of a scrape; 0 when it is absent (a counter never moved)."""
    for family in text_string_to_metric_families(text):
        for metric in family.samples:
            if metric.name == name and all(metric.labels.get(k) == v for k, v in labels.items()):
                return float(metric.value)
    return 0.0


def scrape(url: str, **headers: str) -> str:
    response = httpx.get(f"{url}/metrics", headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


def register_version(client: httpx.Client, model: str) -> None:
    response = client.post(f"/models/{model}/versions", json=HAND_SET_VERSION)
    assert response.status_code == 201, response.text


@pytest.fixture
def private_server(tmp_path: Path) -> Iterator[LiveServer]:
    """A server on a SQLite database of its own: its job counts are exactly this test's."""
    url = f"sqlite:///{tmp_path / 'private.db'}"
    upgrade_to_head(url)
    server = start_server(make_settings(url, tmp_path, workers=0))
    yield server
    server.stop()
    server.database.engine.dispose()


def test_requests_are_counted_by_route_template(
    live_server: LiveServer, reader: httpx.Client
) -> None:
    before = scrape(live_server.url)
    cohort_id = str(uuid.uuid4())
    for _ in range(3):
        assert reader.get(f"/cohorts/{cohort_id}").status_code == 404
    after = scrape(live_server.url)

    labels = {"method": "GET", "route": "/cohorts/{cohort_id}", "status": "404"}
    name = "gradecast_http_requests_total"
    assert sample(after, name, **labels) - sample(before, name, **labels) == 3
    count = "gradecast_http_request_duration_seconds_count"
    route = {"method": "GET", "route": "/cohorts/{cohort_id}"}
    assert sample(after, count, **route) - sample(before, count, **route) >= 3
    assert cohort_id not in after


def test_predictions_are_counted_by_model_and_version(
    live_server: LiveServer, admin: httpx.Client
) -> None:
    model = f"obs-{uuid.uuid4().hex[:8]}"
    register_version(admin, model)
    students = [{"id": f"n{i}", "maths": 12, "info": 13, "francais": 11} for i in range(5)]
    response = admin.post("/predict", json={"model": model, "students": students})
    assert response.status_code == 200, response.text
    csv = "id;maths;info;francais\r\nn1;13;14;11\r\nn2;12,5;9;15\r\n"
    response = admin.post(
        "/predict", params={"model": model}, content=csv, headers={"Content-Type": "text/csv"}
    )
    assert response.status_code == 200, response.text

    text = scrape(live_server.url)
    assert sample(text, "gradecast_predictions_total", model=model, version="1") == 7
    ok = {"method": "POST", "route": "/predict", "status": "200"}
    assert sample(text, "gradecast_http_requests_total", **ok) >= 2


def test_jobs_gauge_reads_the_queue(private_server: LiveServer) -> None:
    tenant = make_tenant(private_server)
    with tenant.client(Role.trainer) as trainer:
        cohort = trainer.post("/cohorts", json=_cohort(f"c-{uuid.uuid4().hex[:6]}"))
        assert cohort.status_code == 201, cohort.text
        job = trainer.post("/jobs", json={"cohort_id": cohort.json()["id"]})
        assert job.status_code == 202, job.text

    text = scrape(private_server.url)
    assert sample(text, "gradecast_jobs", status="queued") == 1
    assert sample(text, "gradecast_jobs", status="succeeded") == 0
    assert sample(text, "gradecast_job_queue_depth") == 1


def test_worker_reports_job_outcome_and_duration(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'worker.db'}"
    upgrade_to_head(url)
    server = start_server(make_settings(url, tmp_path, workers=1))
    try:
        tenant = make_tenant(server)
        with tenant.client(Role.trainer) as trainer:
            cohort = trainer.post("/cohorts", json=_cohort("worked"))
            assert cohort.status_code == 201, cohort.text
            job = trainer.post(
                "/jobs", json={"cohort_id": cohort.json()["id"], "algorithm": "closed_form"}
            )
            assert job.status_code == 202, job.text
            deadline = time.monotonic() + 60
            while trainer.get(f"/jobs/{job.json()['id']}").json()["status"] != "succeeded":
                assert time.monotonic() < deadline, "the job did not succeed in 60 s"
                time.sleep(0.05)
        # The worker observes the outcome just after committing it.
        deadline = time.monotonic() + 10
        while True:
            text = scrape(server.url)
            if sample(text, "gradecast_job_outcomes_total", outcome="succeeded") == 1:
                break
            assert time.monotonic() < deadline, "no job outcome observed"
            time.sleep(0.05)
        assert sample(text, "gradecast_jobs", status="succeeded") == 1
        assert sample(text, "gradecast_job_queue_depth") == 0
        count = "gradecast_job_duration_seconds_count"
        assert sample(text, count, outcome="succeeded") == 1
    finally:
        server.stop()
        server.database.engine.dispose()


def test_metrics_token_is_enforced(database_url: str, tmp_path: Path) -> None:
    token = "metrics-" + uuid.uuid4().hex
    server = start_server(make_settings(database_url, tmp_path, workers=0, metrics_token=token))
    try:
        missing = httpx.get(f"{server.url}/metrics")
        assert missing.status_code == 401
        assert missing.headers["WWW-Authenticate"] == "Bearer"
        assert missing.json()["code"] == "unauthorized"
        wrong = httpx.get(f"{server.url}/metrics", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        text = scrape(server.url, Authorization=f"Bearer {token}")
        assert "gradecast_http_requests_total" in text
        assert "gradecast_jobs" in text
    finally:
        server.stop()
        server.database.engine.dispose()


def test_metrics_on_their_own_port(database_url: str, tmp_path: Path) -> None:
    port = free_port()
    server = start_server(make_settings(database_url, tmp_path, workers=0, metrics_port=port))
    try:
        assert httpx.get(f"{server.url}/healthz").status_code == 200
        assert httpx.get(f"{server.url}/metrics").status_code == 404
        text = scrape(f"http://127.0.0.1:{port}")
        ok = {"method": "GET", "route": "/healthz", "status": "200"}
        assert sample(text, "gradecast_http_requests_total", **ok) == 1
        assert sample(text, "gradecast_http_requests_total", route="/metrics") == 0
    finally:
        server.stop()
        server.database.engine.dispose()
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2)


@pytest.mark.parametrize(
    ("sent", "kept"),
    [("abc.DEF-123_x", True), ("a" * 64, True), ("a" * 65, False), ("bad id!", False)],
)
def test_request_id_is_echoed_or_generated(anonymous: httpx.Client, sent: str, kept: bool) -> None:
    response = anonymous.get("/healthz", headers={"X-Request-ID": sent})
    echoed = response.headers["X-Request-ID"]
    if kept:
        assert echoed == sent
    else:
        assert re.fullmatch(r"[0-9a-f]{32}", echoed)


def test_request_id_is_generated_for_every_answer(anonymous: httpx.Client) -> None:
    ids = {anonymous.get("/healthz").headers["X-Request-ID"] for _ in range(3)}
    ids.add(anonymous.get("/no-such-route").headers["X-Request-ID"])
    assert len(ids) == 4
    assert all(re.fullmatch(r"[0-9a-f]{32}", rid) for rid in ids)


def test_access_line(
    tenant: Tenant, reader: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gradecast.access")
    cohort_id = str(uuid.uuid4())
    # A query string that the route takes (an unknown one is a 422 before the 404).
    response = reader.get(
        f"/jobs/{cohort_id}/loss?max_points=7919", headers={"X-Request-ID": "t-1"}
    )
    assert response.status_code == 404
    lines = _wait_for_records(caplog, lambda r: getattr(r, "request_id", None) == "t-1")
    assert len(lines) == 1
    line = lines[0]
    assert line.name == "gradecast.access"
    assert line.__dict__["method"] == "GET"
    assert line.__dict__["route"] == "/jobs/{job_id}/loss"
    assert line.__dict__["status"] == 404
    assert line.__dict__["duration_ms"] >= 0
    assert line.__dict__["organisation_id"] == str(tenant.organisation_id)
    assert cohort_id not in _everything(line)
    assert "7919" not in _everything(line)

    anonymous = httpx.get(f"{tenant.base_url}/healthz", headers={"X-Request-ID": "t-2"})
    assert anonymous.status_code == 200
    (line,) = _wait_for_records(caplog, lambda r: getattr(r, "request_id", None) == "t-2")
    assert "organisation_id" not in line.__dict__


def test_request_id_filter_tags_other_records() -> None:
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep()
    handler.addFilter(RequestIdFilter())
    logger = logging.getLogger("gradecast.test-filter")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("outside")
        token = request_id.set("req-42")
        try:
            logger.warning("inside")
        finally:
            request_id.reset(token)
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    assert not hasattr(records[0], "request_id")
    assert records[1].__dict__["request_id"] == "req-42"


def test_logs_never_carry_pupils_grades_or_keys(
    live_server: LiveServer, tenant: Tenant, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    marker = f"pupil-{uuid.uuid4().hex}"
    # Four decimals: a duration or other number in a log line won't contain them by chance
    # (with two, "4.61" can occur inside a duration such as "duration_ms": 24.613).
    grades = ["13.3719", "17.2953", "4.6187", "11.8341"]
    model = f"obs-{uuid.uuid4().hex[:8]}"
    with tenant.client(Role.admin) as admin:
        cohort = _cohort(f"c-{marker}", marker=marker, grades=[float(g) for g in grades])
        assert admin.post("/cohorts", json=cohort).status_code == 201
        register_version(admin, model)
        student = {"id": marker, "maths": 13.3719, "info": 17.2953, "francais": 4.6187}
        response = admin.post("/predict", json={"model": model, "students": [student]})
        assert response.status_code == 200, response.text
        csv = f"id;maths;info;francais\r\n{marker};13,3719;17,2953;4,6187\r\n"
        response = admin.post(
            "/predict",
            params={"model": model, "id_column": "id"},
            content=csv,
            headers={"Content-Type": "text/csv"},
        )
        assert response.status_code == 200, response.text
        # A query string the route does not take is refused, and not logged either.
        response = admin.post(
            "/predict",
            params={"model": model, "who": marker},
            content=csv,
            headers={"Content-Type": "text/csv"},
        )
        assert response.status_code == 422, response.text
        assert response.json()["errors"][0]["loc"] == ["query", "who"]
        assert marker not in response.text
        bad = {"id": marker, "maths": 11.8341, "info": "x", "francais": 4.6187}
        assert admin.post("/predict", json={"model": model, "students": [bad]}).status_code == 422
        assert admin.get("/cohorts", params={"api_key": tenant.keys[Role.admin]}).is_error
        done_id = admin.get("/healthz", headers={"X-Request-ID": "last"}).headers["X-Request-ID"]
    _wait_for_records(caplog, lambda r: getattr(r, "request_id", None) == done_id)

    forbidden = [marker, *grades, "13,3719", *tenant.keys.values()]
    # httpx and httpcore are this test's own client, which logs the URLs it requests.
    server_records = [r for r in caplog.records if r.name.split(".")[0] not in CLIENT_LOGGERS]
    assert any(r.name == "gradecast.access" for r in server_records)
    for record in server_records:
        text = _everything(record)
        for value in forbidden:
            assert value not in text, f"{value!r} logged by {record.name}: {record.getMessage()}"


def _cohort(name: str, marker: str = "e", grades: list[float] | None = None) -> dict[str, object]:
    maths, info, francais, concours = grades or [12, 15, 9, 14]
    rows = [(maths, info, francais, concours), (5, 9, 12, 7), (13, 12, 13, 12), (10, 12, 15, 11)]
    return {
        "name": name,
        "features": FEATURES,
        "target": "concours",
        "students": [
            {"id": f"{marker}{i}", "maths": m, "info": n, "francais": f, "concours": c}
            for i, (m, n, f, c) in enumerate(rows)
        ],
    }


# When and where a record was made: digits that owe nothing to the request (a test saw its
# "7919" in relativeCreated, 130577.791929245).
_CLOCK_AND_PLACE = frozenset(
    {"created", "msecs", "relativeCreated", "thread", "process", "lineno", "duration_ms"}
)


def _everything(record: logging.LogRecord) -> str:
    """The message and every attribute of a record, as any formatter could render them."""
    fields = {k: v for k, v in record.__dict__.items() if k not in _CLOCK_AND_PLACE}
    return record.getMessage() + json.dumps(fields, default=str)


def _wait_for_records(
    caplog: pytest.LogCaptureFixture, predicate: Callable[[logging.LogRecord], bool]
) -> list[logging.LogRecord]:
    # The access line is written after the response is sent: give the server a moment.
    deadline = time.monotonic() + 5
    while True:
        found = [record for record in caplog.records if predicate(record)]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.01)


def test_an_unhandled_error_is_a_json_500_with_the_request_id(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from app.core.config import Settings
    from app.main import create_app

    app = create_app(Settings(database_url=f"sqlite:///{tmp_path}/x.db", data_dir=tmp_path))

    def boom() -> None:
        raise RuntimeError("a bug")

    app.add_api_route("/boom", boom)
    caplog.set_level(logging.ERROR)
    transport = httpx.ASGITransport(app=app)

    async def call() -> httpx.Response:
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.get("/boom", headers={"X-Request-ID": "req-boom"})

    response = asyncio.run(call())
    assert response.status_code == 500
    assert response.headers["X-Request-ID"] == "req-boom"
    assert response.json()["code"] == "internal_error"
    assert set(response.json()) == {"detail", "code", "errors"}
    logged = [r for r in caplog.records if r.name == "gradecast.errors"]
    assert logged
    assert logged[0].exc_info is not None
    assert logged[0].__dict__["request_id"] == "req-boom"


# --- the log lines themselves -----------------------------------------------------------

# What a LogRecord carries of its own, and what formatters add to it: never an extra field.
_RESERVED = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}


def _expected_line(formatter: JsonLines, record: logging.LogRecord) -> dict[str, object]:
    """The line as the formatter has always written it: every attribute of the record that
    is neither logging's own nor private, by name, after time, level, logger and message."""
    fields = record.__dict__
    extras = sorted(k for k in fields if k not in _RESERVED | {"color_message"} and k[:1] != "_")
    return {
        "time": formatter.formatTime(record),
        "level": record.levelname,
        "logger": record.name,
        "message": record.getMessage(),
        **{key: fields[key] for key in extras},
    }


_FIELD_NAMES = st.text(alphabet="abcdefgh_", min_size=1, max_size=4).filter(
    lambda name: name not in _RESERVED
)


@given(
    extras=st.lists(
        st.dictionaries(_FIELD_NAMES, st.integers(-(2**63), 2**63 - 1), max_size=5), max_size=4
    ),
    tagged=st.booleans(),
)
def test_json_lines_write_every_extra_field_of_every_shape(
    extras: list[dict[str, int]], tagged: bool
) -> None:
    # One formatter for all the records of an example: a shape it has seen before is
    # written from its memory of that shape, which must give the same line.
    formatter = JsonLines()
    logger = logging.getLogger("gradecast.test-shapes")
    for extra in [*extras, *extras]:
        record = logger.makeRecord(
            logger.name, logging.INFO, __file__, 0, "m", (), None, extra=extra
        )
        if tagged:  # as the request id filter tags a record after it was made
            record.request_id = "r-1"
        assert json.loads(formatter.format(record)) == _expected_line(formatter, record)
        record.message = record.getMessage()  # as another handler's formatter leaves it
        assert json.loads(formatter.format(record)) == _expected_line(formatter, record)


def test_json_lines_forget_shapes_beyond_their_memory_and_stay_right() -> None:
    formatter = JsonLines()
    logger = logging.getLogger("gradecast.test-shapes")
    for i in range(600):
        extra = {f"field_{i}": i, "status": 200}
        record = logger.makeRecord(
            logger.name, logging.INFO, __file__, 0, "m", (), None, extra=extra
        )
        assert json.loads(formatter.format(record)) == _expected_line(formatter, record)


@given(
    extra=st.dictionaries(
        _FIELD_NAMES,
        st.one_of(
            st.integers(-(2**63), 2**63 - 1),
            st.floats(allow_nan=False),
            # An alphabet of its own (quotes, escapes, accents, a line break, an astral
            # character): st.text's default would build Hypothesis's unicode tables first,
            # which on a fresh clone took longer than its health check allows.
            st.text(alphabet='aé"\\\n\u2028😀 ', max_size=8),
            st.none(),
            st.uuids(),
        ),
        max_size=6,
    ),
    created=st.floats(1e9, 4e9),
    tagged=st.booleans(),
)
def test_a_line_written_without_a_record_is_the_records_line(
    extra: dict[str, object], created: float, tagged: bool
) -> None:
    """BatchedLines.write_fields (the access line's path) writes the very text that the
    record path (makeRecord, RequestIdFilter, JsonLines) writes for the same fields."""
    formatter = JsonLines()
    logger = logging.getLogger("gradecast.test-direct")
    record = logger.makeRecord(
        logger.name, logging.INFO, __file__, 0, "request", (), None, extra=extra
    )
    record.created, record.msecs = created, int((created - int(created)) * 1000)
    token = request_id.set("req-direct") if tagged else None
    try:
        RequestIdFilter().filter(record)
        direct = BatchedLines(io.StringIO(), interval=3600)
        direct.setFormatter(formatter)
        with mock.patch("app.core.logging.time.time", return_value=created):
            direct.write_fields(logger.name, logging.INFO, "request", dict(extra))
    finally:
        if token is not None:
            request_id.reset(token)
    assert direct._lines == [formatter.format(record)]


def test_lines_go_without_a_record_only_when_logging_is_as_configured() -> None:
    logger = logging.getLogger("gradecast.test-direct-when")
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, root.filters[:])
    try:
        configure_logging("INFO")
        (handler,) = root.handlers
        assert direct_lines(logger, logging.INFO) is handler
        assert direct_lines(logger, logging.DEBUG) is None  # not enabled for it
        other = logging.StreamHandler(io.StringIO())
        changes: list[tuple[Callable[[Any], None], Callable[[Any], None], object]] = [
            (logger.addHandler, logger.removeHandler, other),
            (root.addHandler, root.removeHandler, other),  # as caplog does
            (logger.addFilter, logger.removeFilter, other.filter),
            (handler.addFilter, handler.removeFilter, other.filter),
        ]
        for add, remove, thing in changes:
            add(thing)
            assert direct_lines(logger, logging.INFO) is None
            remove(thing)
            assert direct_lines(logger, logging.INFO) is handler
        logger.propagate = False
        assert direct_lines(logger, logging.INFO) is None
        logger.propagate = True
        handler.setFormatter(logging.Formatter())
        assert direct_lines(logger, logging.INFO) is None
        handler.close()
    finally:
        root.handlers[:], root.filters[:] = saved[0], saved[2]
        root.setLevel(saved[1])


def test_the_access_line_has_exactly_its_fields(tmp_path: Path) -> None:
    from app.core.config import Settings
    from app.main import create_app

    app = create_app(Settings(database_url=f"sqlite:///{tmp_path}/x.db", data_dir=tmp_path))
    stream = io.StringIO()
    handler = BatchedLines(stream, interval=3600)
    handler.setFormatter(JsonLines())
    handler.addFilter(RequestIdFilter())
    access = logging.getLogger("gradecast.access")
    access.addHandler(handler)
    level = access.level
    access.setLevel(logging.INFO)

    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.get("/healthz", headers={"X-Request-ID": "req-fields"})

    try:
        assert asyncio.run(call()).status_code == 200
        handler.flush()
    finally:
        access.removeHandler(handler)
        access.setLevel(level)
        handler.close()
    (line,) = [json.loads(text) for text in stream.getvalue().splitlines()]
    assert list(line) == [
        "time",
        "level",
        "logger",
        "message",
        "duration_ms",
        "method",
        "request_id",
        "route",
        "status",
    ]
    assert line["level"] == "INFO"
    assert line["logger"] == "gradecast.access"
    assert line["message"] == "request"
    assert (line["method"], line["route"], line["status"]) == ("GET", "/healthz", 200)
    assert line["request_id"] == "req-fields"
    assert isinstance(line["duration_ms"], float)


def _batched(stream: TextIO, **options: Any) -> tuple[BatchedLines, logging.Logger]:
    handler = BatchedLines(stream, **options)
    handler.setFormatter(JsonLines())
    logger = logging.getLogger(f"gradecast.test-batched-{uuid.uuid4().hex[:8]}")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return handler, logger


def _messages(text: str) -> list[str]:
    return [json.loads(line)["message"] for line in text.splitlines()]


def test_batched_lines_write_a_warning_at_once_after_the_lines_before_it() -> None:
    stream = io.StringIO()
    handler, logger = _batched(stream, interval=3600)
    logger.info("one")
    logger.info("two")
    assert stream.getvalue() == ""
    logger.warning("three")
    assert _messages(stream.getvalue()) == ["one", "two", "three"]
    logger.error("four")
    assert _messages(stream.getvalue()) == ["one", "two", "three", "four"]
    handler.close()


def test_only_the_batched_loggers_lines_wait() -> None:
    """A line of another logger (uvicorn's "Finished server process", just before it
    re-raises SIGTERM and the process dies without logging.shutdown) is written at once,
    with the waiting lines before it."""
    stream = io.StringIO()
    handler, logger = _batched(stream, interval=3600)
    handler.batched = frozenset({logger.name})
    other = logging.getLogger(f"{logger.name}-other")
    other.addHandler(handler)
    other.propagate = False
    other.setLevel(logging.INFO)
    logger.info("one")
    logger.info("two")
    assert stream.getvalue() == ""
    other.info("three")
    assert _messages(stream.getvalue()) == ["one", "two", "three"]
    handler.close()


def test_batched_lines_write_a_full_batch_at_once() -> None:
    stream = io.StringIO()
    handler, logger = _batched(stream, interval=3600, capacity=3)
    logger.info("one")
    logger.info("two")
    assert stream.getvalue() == ""
    logger.info("three")
    assert _messages(stream.getvalue()) == ["one", "two", "three"]
    handler.close()


def test_batched_lines_are_written_by_the_flusher_without_more_logging() -> None:
    stream = io.StringIO()
    handler, logger = _batched(stream, interval=0.01)
    for round_ in range(3):  # the flusher waits again once it has written a batch
        logger.info(f"line {round_}")
        deadline = time.monotonic() + 5
        while len(stream.getvalue().splitlines()) <= round_:
            assert time.monotonic() < deadline, "the flusher wrote nothing"
            time.sleep(0.01)
    assert _messages(stream.getvalue()) == ["line 0", "line 1", "line 2"]
    handler.close()


def test_logging_shutdown_writes_the_batched_lines() -> None:
    stream = io.StringIO()
    handler, logger = _batched(stream, interval=3600)
    logger.info("before exit")
    logging.shutdown([weakref.ref(handler)])  # what atexit runs, after a SIGTERM too
    assert _messages(stream.getvalue()) == ["before exit"]
    logger.info("after close")  # a closed handler keeps nothing back
    assert _messages(stream.getvalue()) == ["before exit", "after close"]


def test_batched_lines_are_written_once_across_a_fork(tmp_path: Path) -> None:
    path = tmp_path / "lines.jsonl"
    with path.open("w") as stream:
        handler, logger = _batched(stream, interval=3600)
        logger.info("parent's")
        pid = os.fork()
        if pid == 0:  # the child: its copy of the parent's batch is not its to write
            logger.info("child's")
            handler.flush()
            os._exit(0)
        assert os.waitpid(pid, 0)[1] == 0
        handler.close()
    assert sorted(_messages(path.read_text())) == ["child's", "parent's"]


def test_random_ids_are_new_across_batches_and_forks() -> None:
    ids = RandomIds(batch_bytes=64)  # four ids a read of os.urandom
    drawn = [ids.new() for _ in range(40)]
    assert all(re.fullmatch(r"[0-9a-f]{32}", rid) for rid in drawn)
    assert len(set(drawn)) == len(drawn)
    ids.new()  # the parent's current batch has ids left: the child must not draw them
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.write(write, "".join(ids.new() for _ in range(3)).encode())
        os._exit(0)
    os.close(write)
    assert os.waitpid(pid, 0)[1] == 0
    with os.fdopen(read) as pipe:
        child = pipe.read()
    parents = [ids.new() for _ in range(3)]
    assert len(child) == 3 * 32
    assert not {child[i : i + 32] for i in range(0, len(child), 32)} & {*parents, *drawn}
