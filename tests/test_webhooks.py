"""Webhooks over real HTTP, delivered to a real receiver (http.server on 127.0.0.1): Standard
Webhooks signatures, retries with backoff, giving up, a worker SIGKILLed mid-delivery, URL
rules (SSRF) at creation and at delivery, and organisations kept apart."""

import base64
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook as Verifier
from standardwebhooks import WebhookVerificationError

from app.db.models import Role, WebhookDelivery
from app.db.session import write_session
from app.services.webhooks import enqueue
from app.worker import deliveries
from tests import processes
from tests.conftest import (
    LiveServer,
    Tenant,
    free_port,
    make_settings,
    make_tenant,
    start_server,
)
from tests.processes import private_database
from tests.test_jobs import upload_example, wait_for

README = Path(__file__).resolve().parents[1] / "README.md"
ALL_EVENTS = [
    "job.succeeded",
    "job.failed",
    "job.cancelled",
    "version.activated",
    "cohort.erased",
    "evaluation.created",
]
HAND_SET = {
    "features": ["maths", "info", "francais"],
    "target": "concours",
    "theta": [0, 0.33, 0.33, 0.33],
    "grade_range": [0, 20],
    "activate": True,
}


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A webhook receiver: answers each request with the next planned status (200 once the
    plan is used up), or holds it open while ``hold`` is set."""

    plan: list[int] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    hold: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook?source=gradecast"

    def start(self) -> "Receiver":
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                with receiver.lock:
                    receiver.received.append(Received(dict(self.headers.items()), body))
                    status = receiver.plan.pop(0) if receiver.plan else 200
                while receiver.hold.is_set():
                    time.sleep(0.05)
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.hold.clear()
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def events(self) -> list[str]:
        with self.lock:
            return [json.loads(r.body)["type"] for r in self.received]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    started = Receiver().start()
    yield started
    started.stop()


@pytest.fixture(scope="module")
def hooks_server(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """A server of its own database (no other test server delivers its webhooks), that
    may deliver over http to 127.0.0.1, with retries fast and a short retry window."""
    data_dir = tmp_path_factory.mktemp("hooks")
    settings = make_settings(
        private_database(database_url, data_dir, "gradecast_webhooks"),
        data_dir,
        webhook_allow_http=True,
        webhook_allow_private=True,
        webhook_backoff_seconds=0.2,
        webhook_retry_seconds=4.0,
    )
    server = start_server(settings)
    yield server
    server.stop()
    server.database.engine.dispose()


def until(check: Callable[[], Any], timeout: float = 30, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout}s")
        time.sleep(0.05)


def subscribe(client: httpx.Client, url: str, events: list[str]) -> dict[str, Any]:
    response = client.post("/webhooks", json={"url": url, "events": events})
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    assert response.headers["Location"] == f"/webhooks/{created['id']}"
    return created


def deliveries_of(client: httpx.Client, webhook_id: str) -> list[dict[str, Any]]:
    response = client.get(f"/webhooks/{webhook_id}/deliveries")
    assert response.status_code == 200, response.text
    data: list[dict[str, Any]] = response.json()["data"]
    return data


def settled(client: httpx.Client, webhook_id: str, count: int) -> list[dict[str, Any]] | None:
    found = deliveries_of(client, webhook_id)
    done = [d for d in found if d["status"] in ("succeeded", "failed")]
    return found if len(found) >= count and len(done) == len(found) else None


def activate_hand_set(client: httpx.Client, model: str = "course") -> None:
    response = client.post(f"/models/{model}/versions", json=HAND_SET)
    assert response.status_code == 201, response.text


# --- the resource -----------------------------------------------------------------------


def test_create_list_get_delete_the_secret_shown_once(admin: httpx.Client) -> None:
    created = subscribe(admin, "https://sis.example.org/events", ["job.succeeded", "job.failed"])
    secret = created["secret"]
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 32
    assert created["events"] == ["job.failed", "job.succeeded"]

    one = admin.get(f"/webhooks/{created['id']}")
    assert one.status_code == 200
    assert "secret" not in one.json()
    listed = admin.get("/webhooks").json()
    assert listed["count"] == 1
    assert [h["id"] for h in listed["data"]] == [created["id"]]
    assert secret not in admin.get("/webhooks").text
    assert deliveries_of(admin, created["id"]) == []

    assert admin.delete(f"/webhooks/{created['id']}").status_code == 204
    assert admin.get(f"/webhooks/{created['id']}").status_code == 404
    assert admin.get("/webhooks").json()["count"] == 0


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://sis.example.org/events", "https"),
        ("ftp://sis.example.org/events", "https"),
        ("https://127.0.0.1/events", "loopback"),
        ("https://localhost:8443/events", "loopback"),
        ("https://api.localhost/events", "loopback"),
        ("https://[::1]/events", "loopback"),
        ("https://[::ffff:127.0.0.1]/events", "loopback"),
        ("https://169.254.169.254/latest/meta-data", "link-local"),
        ("https://10.1.2.3/events", "private"),
        ("https://192.168.0.10/events", "private"),
        ("https://0.0.0.0/events", "unspecified"),
        ("https://user:pass@sis.example.org/events", "credentials"),
        ("https:///events", "host"),
        ("https://sis.example.org:99999/events", "valid URL"),
    ],
)
def test_urls_that_are_refused_by_default(admin: httpx.Client, url: str, why: str) -> None:
    response = admin.post("/webhooks", json={"url": url, "events": ["job.failed"]})
    assert response.status_code == 422, response.text
    error = response.json()["errors"][0]
    assert error["loc"] == ["body", "url"]
    assert why in error["msg"]
    assert admin.get("/webhooks").json()["count"] == 0


def test_events_must_be_known_and_given(admin: httpx.Client) -> None:
    url = "https://sis.example.org/events"
    for events in ([], ["job.exploded"], "job.failed"):
        response = admin.post("/webhooks", json={"url": url, "events": events})
        assert response.status_code == 422, response.text
        assert response.json()["errors"][0]["loc"][:2] == ["body", "events"]
    assert admin.get("/webhooks").json()["count"] == 0


def test_a_name_resolving_to_loopback_is_refused_at_delivery(receiver: Receiver) -> None:
    # Accepted at creation (a name is resolved when delivering), refused then: SSRF.
    url = receiver.url.replace("127.0.0.1", "localhost")
    outcome = deliveries.post(url, b"{}", {"content-type": "application/json"}, False)
    assert not outcome.delivered
    assert outcome.error is not None
    assert "loopback" in outcome.error
    assert receiver.received == []
    allowed = deliveries.post(url, b"{}", {"content-type": "application/json"}, True)
    assert allowed.delivered
    assert allowed.status_code == 200
    assert len(receiver.received) == 1


# --- deliveries ---------------------------------------------------------------------------


def test_events_are_delivered_signed_with_ids_and_figures_only(
    hooks_server: LiveServer, receiver: Receiver
) -> None:
    tenant = make_tenant(hooks_server)
    with tenant.client(Role.admin) as client:
        hook = subscribe(client, receiver.url, ALL_EVENTS)
        cohort = upload_example(client)
        response = client.post(
            "/jobs", json={"cohort_id": cohort["id"], "model": "concours", "algorithm": "gd"}
        )
        assert response.status_code == 202, response.text
        job = wait_for(client, response.json()["id"])
        assert job["status"] == "succeeded"
        assert client.delete(f"/cohorts/{cohort['id']}").status_code == 204
        found = until(lambda: settled(client, hook["id"], 3), what="three deliveries")
    assert sorted(receiver.events()) == ["cohort.erased", "job.succeeded", "version.activated"]
    assert {d["status"] for d in found} == {"succeeded"}

    verifier = Verifier(hook["secret"])
    for request in receiver.received:
        payload = verifier.verify(request.body, request.headers)
        assert request.headers["webhook-id"] in {d["id"] for d in found}
        assert request.headers["webhook-signature"].startswith("v1,")
        assert set(payload) == {"type", "timestamp", "data"}
        text = request.body.decode()
        # Pupils' ids of examples/cohort.csv, and no grade, name or error text.
        assert '"e1"' not in text
        assert "maths" not in text.lower()
    by_type = {json.loads(r.body)["type"]: json.loads(r.body)["data"] for r in receiver.received}
    assert by_type["job.succeeded"]["job_id"] == job["id"]
    assert by_type["job.succeeded"]["model_version"] == job["model_version"]
    assert by_type["job.succeeded"]["risk"] == pytest.approx(job["progress"]["risk"])
    assert by_type["version.activated"] == {
        "model": "concours",
        "version": job["model_version"],
        "from_version": None,
    }
    assert by_type["cohort.erased"] == {
        "cohort_id": cohort["id"],
        "n_students": cohort["n_students"],
    }

    tampered = receiver.received[0]
    with pytest.raises(WebhookVerificationError):
        verifier.verify(tampered.body.replace(b"}", b" }", 1), tampered.headers)
    with pytest.raises(WebhookVerificationError):
        Verifier(subscribe_secret()).verify(tampered.body, tampered.headers)

    # The README's snippet, as a receiver would paste it.
    verify = readme_verify()
    for request in receiver.received:
        event = verify(hook["secret"], request.body, lowered(request.headers))
        assert event == json.loads(request.body)
    with pytest.raises(ValueError, match="bad signature"):
        verify(subscribe_secret(), tampered.body, lowered(tampered.headers))
    with pytest.raises(ValueError, match="bad signature"):
        verify(hook["secret"], tampered.body + b" ", lowered(tampered.headers))
    stale = lowered(tampered.headers) | {"webhook-timestamp": str(int(time.time()) - 600)}
    with pytest.raises(ValueError, match="replay"):
        verify(hook["secret"], tampered.body, stale)


def lowered(headers: dict[str, str]) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items()}


def readme_verify() -> Callable[[str, bytes, dict[str, str]], dict[str, Any]]:
    """The `verify` function of the README's signature-checking snippet."""
    section = README.read_text().split("### Webhooks\n", 1)[1].split("\n### ", 1)[0]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict[str, Any] = {}
    exec(code, namespace)
    verify: Callable[[str, bytes, dict[str, str]], dict[str, Any]] = namespace["verify"]
    return verify


def subscribe_secret() -> str:
    return "whsec_" + base64.b64encode(uuid.uuid4().bytes * 2).decode()


def test_a_receiver_failing_three_times_gets_it_the_fourth_with_one_id(
    hooks_server: LiveServer, receiver: Receiver
) -> None:
    receiver.plan = [500, 503, 502]
    tenant = make_tenant(hooks_server)
    with tenant.client(Role.admin) as client:
        hook = subscribe(client, receiver.url, ["version.activated"])
        activate_hand_set(client)
        (delivery,) = until(lambda: settled(client, hook["id"], 1), what="the delivery")
    assert delivery["status"] == "succeeded"
    assert delivery["attempts"] == 4
    assert delivery["last_status_code"] == 200
    assert delivery["last_error"] is None
    assert len(receiver.received) == 4
    assert {r.headers["webhook-id"] for r in receiver.received} == {delivery["id"]}
    # Each attempt is signed afresh, and each signature verifies.
    verifier = Verifier(hook["secret"])
    for request in receiver.received:
        verifier.verify(request.body, request.headers)
    assert len({r.body for r in receiver.received}) == 1


def test_a_receiver_that_never_answers_2xx_is_given_up(
    hooks_server: LiveServer, receiver: Receiver
) -> None:
    receiver.plan = [500] * 1000
    tenant = make_tenant(hooks_server)
    with tenant.client(Role.admin) as client:
        hook = subscribe(client, receiver.url, ["version.activated"])
        activate_hand_set(client)
        (delivery,) = until(lambda: settled(client, hook["id"], 1), what="giving up")
    assert delivery["status"] == "failed"
    assert delivery["last_status_code"] == 500
    assert delivery["last_error"] == "the receiver answered 500"
    # Backoff 0.2 s doubling (with jitter) within a 4 s window: a handful of attempts.
    assert 3 <= delivery["attempts"] <= 8
    assert len(receiver.received) == delivery["attempts"]


def test_no_delivery_to_another_organisations_hooks(hooks_server: LiveServer) -> None:
    ours, theirs = Receiver().start(), Receiver().start()
    try:
        tenant, other = make_tenant(hooks_server), make_tenant(hooks_server)
        with tenant.client(Role.admin) as client, other.client(Role.admin) as other_client:
            hook = subscribe(client, ours.url, ALL_EVENTS)
            other_hook = subscribe(other_client, theirs.url, ALL_EVENTS)
            activate_hand_set(client)
            until(lambda: settled(client, hook["id"], 1), what="our delivery")
            # Another organisation's webhook is a 404, its deliveries too.
            assert client.get(f"/webhooks/{other_hook['id']}").status_code == 404
            assert client.get(f"/webhooks/{other_hook['id']}/deliveries").status_code == 404
            assert client.delete(f"/webhooks/{other_hook['id']}").status_code == 404
            assert deliveries_of(other_client, other_hook["id"]) == []
        assert ours.events() == ["version.activated"]
        assert theirs.received == []
    finally:
        ours.stop()
        theirs.stop()


def test_a_deleted_webhook_is_sent_nothing_more(
    hooks_server: LiveServer, receiver: Receiver
) -> None:
    tenant = make_tenant(hooks_server)
    with tenant.client(Role.admin) as client:
        hook = subscribe(client, receiver.url, ["version.activated"])
        assert client.delete(f"/webhooks/{hook['id']}").status_code == 204
        activate_hand_set(client)
        second = subscribe(client, receiver.url, ["version.activated"])
        activate_hand_set(client, "other")
        until(lambda: settled(client, second["id"], 1), what="the second hook's delivery")
    (only,) = receiver.received
    assert json.loads(only.body)["data"]["model"] == "other"


# --- a worker killed mid-delivery -----------------------------------------------------------


@pytest.fixture
def api_only(database_url: str, tmp_path: Path) -> Iterator[LiveServer]:
    settings = make_settings(
        private_database(database_url, tmp_path, "gradecast_webhook_kill"),
        tmp_path,
        workers=0,
        webhook_allow_http=True,
        webhook_allow_private=True,
    )
    server = start_server(settings)
    yield server
    server.stop()
    server.database.engine.dispose()


def test_a_worker_killed_mid_delivery_is_followed_by_the_same_delivery(
    api_only: LiveServer, receiver: Receiver, tmp_path: Path
) -> None:
    env = {
        "GRADECAST_WEBHOOK_ALLOW_HTTP": "1",
        "GRADECAST_WEBHOOK_ALLOW_PRIVATE": "1",
        "GRADECAST_JOB_LEASE_SECONDS": "1",
    }
    database_url = api_only.settings.resolved_database_url
    tenant: Tenant = make_tenant(api_only)
    receiver.hold.set()
    with tenant.client(Role.admin) as client:
        hook = subscribe(client, receiver.url, ["version.activated"])
        activate_hand_set(client)
        first = processes.start_worker(database_url, **env)
        try:
            until(lambda: receiver.received, what="the first attempt")
            first.kill()
            first.wait()
        finally:
            processes.stop_process(first)
        (pending,) = deliveries_of(client, hook["id"])
        assert pending["status"] == "delivering"
        receiver.hold.clear()
        metrics_port = free_port()
        second = processes.start_worker(
            database_url, **env, GRADECAST_METRICS_PORT=str(metrics_port)
        )
        try:
            (delivery,) = until(lambda: settled(client, hook["id"], 1), 60, "the redelivery")
            scraped = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).text
        finally:
            processes.stop_process(second)
    assert 'gradecast_webhook_delivery_attempts_total{result="succeeded"} 1.0' in scraped
    assert "gradecast_webhook_delivery_duration_seconds_count 1.0" in scraped
    assert delivery["status"] == "succeeded"
    assert delivery["attempts"] == 2
    assert len(receiver.received) == 2
    assert {r.headers["webhook-id"] for r in receiver.received} == {delivery["id"]}
    verifier = Verifier(hook["secret"])
    for request in receiver.received:
        verifier.verify(request.body, request.headers)


def test_an_event_is_queued_in_the_transaction_of_its_change(api_only: LiveServer) -> None:
    """No worker here: what is queued stays pending, to be read back."""
    tenant = make_tenant(api_only)
    with tenant.client(Role.admin) as client:
        hook = subscribe(client, "https://sis.example.invalid/hook", ["job.cancelled"])
        queued = []

        def failing_change() -> None:
            with write_session(api_only.database) as session:
                queued.append(enqueue(session, tenant.organisation_id, "job.cancelled", {}))
                raise RuntimeError("the change fails after its event was queued")

        with pytest.raises(RuntimeError):
            failing_change()
        assert queued == [1]
        assert deliveries_of(client, hook["id"]) == []
        # A queued job cancelled through the API: its event is there once the answer is.
        cohort = upload_example(client)
        job = client.post(
            "/jobs", json={"cohort_id": cohort["id"], "model": "m", "algorithm": "closed_form"}
        ).json()
        cancelled = client.post(f"/jobs/{job['id']}/cancel")
        assert cancelled.json()["status"] == "cancelled"
        (pending,) = deliveries_of(client, hook["id"])
    assert pending["event"] == "job.cancelled"
    assert pending["status"] == "pending"
    assert pending["attempts"] == 0
    with api_only.database.reads() as session:
        body = session.get_one(WebhookDelivery, uuid.UUID(pending["id"])).body
    assert json.loads(body)["data"]["job_id"] == job["id"]
    assert json.loads(body)["data"]["status"] == "cancelled"


def test_an_unknown_event_is_a_bug_not_a_delivery(api_only: LiveServer) -> None:
    tenant = make_tenant(api_only)
    with (
        pytest.raises(ValueError, match="unknown webhook event"),
        write_session(api_only.database) as session,
    ):
        enqueue(session, tenant.organisation_id, "job.exploded", {})


def test_a_failed_job_is_told_without_its_error_text(
    hooks_server: LiveServer, receiver: Receiver
) -> None:
    tenant = make_tenant(hooks_server)
    with tenant.client(Role.admin) as client:
        hook = subscribe(client, receiver.url, ["job.failed", "job.succeeded"])
        cohort = upload_example(client)
        response = client.post(
            "/jobs",
            json={
                "cohort_id": cohort["id"],
                "model": "diverge",
                "algorithm": "gd",
                "learning_rate": 1.0,
                "iterations": 1000,
            },
        )
        assert response.status_code == 202, response.text
        job = wait_for(client, response.json()["id"])
        assert job["status"] == "failed"
        until(lambda: settled(client, hook["id"], 1), what="the delivery")
    (request,) = receiver.received
    event = json.loads(request.body)
    assert event["type"] == "job.failed"
    assert event["data"]["job_id"] == job["id"]
    assert event["data"]["model_version"] is None
    assert "diverged" not in request.body.decode()


def test_the_backoff_jitter_leaves_the_random_module_alone() -> None:
    """The delivery thread's jitter has a generator of its own: the shared one's state (a
    test's seed, Hypothesis's draws) does not move under it."""
    import random

    from app.services.webhooks import backoff_seconds

    before = random.getstate()
    delays = [backoff_seconds(3, 1.0) for _ in range(100)]
    assert random.getstate() == before
    assert all(2.0 <= delay < 4.0 for delay in delays)
    assert len(set(delays)) > 1
