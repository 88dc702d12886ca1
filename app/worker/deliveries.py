"""Webhook deliveries: a loop of its own in each worker, beside (never inside) training.

The loop claims due deliveries from the database, posts each one from a small thread
pool with short timeouts, and records the outcome; ``services.webhooks`` decides what an
outcome means (delivered, retried with backoff, failed). A slow or dead receiver holds
one delivery thread for at most ``TIMEOUT_SECONDS``, never a training job.

The receiver's host is resolved at each attempt and every address it resolves to is
checked against the URL rules; the connection then goes to the address that was checked
(no second lookup a DNS rebinding could change).
"""

import http.client
import logging
import socket
import ssl
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from urllib.parse import urlsplit

from sqlalchemy.exc import OperationalError

from app.core.config import Settings
from app.core.metrics import DeliveryMetrics
from app.db.base import utcnow
from app.db.session import Database, write_session
from app.services import webhooks as webhook_service
from app.services.webhooks import Claimed, Outcome

logger = logging.getLogger("gradecast.webhooks")

POLL_SECONDS = 0.5
TIMEOUT_SECONDS = 5.0
THREADS = 4
MAX_RESPONSE_BYTES = 64 * 1024


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to an address already checked, whatever the host name resolves to now."""

    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self.address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self.address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """TLS to a checked address; the certificate is checked against the URL's host."""

    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self.address = address

    def connect(self) -> None:
        sock = socket.create_connection((self.address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]


def _resolve(host: str, port: int, allow_private: bool) -> str:
    """The first address of ``host``; ValueError naming why if any address is refused."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ValueError(f"the host does not resolve ({exc.strerror})") from None
    addresses = [str(info[4][0]) for info in infos]
    for address in addresses:
        why = webhook_service.refused_address(address, allow_private)
        if why is not None:
            raise ValueError(f"the host resolves to {why}")
    return addresses[0]


def post(url: str, body: bytes, headers: dict[str, str], allow_private: bool) -> Outcome:
    """One attempt: a 2xx answer is a delivery; anything else (another status, a refused
    address, a timeout, a connection error) is an outcome to retry."""
    parts = urlsplit(url)
    https = parts.scheme == "https"
    host = parts.hostname or ""
    port = parts.port or (443 if https else 80)
    try:
        address = _resolve(host, port, allow_private)
    except ValueError as exc:
        return Outcome(delivered=False, error=str(exc))
    kind = _PinnedHTTPSConnection if https else _PinnedHTTPConnection
    connection = kind(host, port, address, TIMEOUT_SECONDS)
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    try:
        connection.request("POST", target, body=body, headers=headers)
        response = connection.getresponse()
        response.read(MAX_RESPONSE_BYTES)
        status = response.status
    except (OSError, http.client.HTTPException) as exc:
        return Outcome(delivered=False, error=f"no answer ({type(exc).__name__})")
    finally:
        connection.close()
    if 200 <= status < 300:
        return Outcome(delivered=True, status_code=status)
    return Outcome(delivered=False, status_code=status, error=f"the receiver answered {status}")


class DeliveryLoop:
    """One thread that claims deliveries and a small pool that posts them."""

    def __init__(
        self,
        database: Database,
        settings: Settings,
        worker_id: str,
        metrics: DeliveryMetrics | None = None,
    ) -> None:
        self.database = database
        self.settings = settings
        self.worker_id = f"{worker_id}:webhooks"
        self.metrics = metrics
        self.stopping = threading.Event()
        self._pool = ThreadPoolExecutor(THREADS, thread_name_prefix="gradecast-webhook")
        self._in_flight: set[Future[None]] = set()
        self._thread = threading.Thread(
            target=self.run_forever, name="gradecast-webhooks", daemon=True
        )
        # A claim outlives the longest attempt with room to spare.
        self.lease_seconds = max(settings.job_lease_seconds, 2 * TIMEOUT_SECONDS)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop claiming; attempts under way finish (each within ``TIMEOUT_SECONDS``)."""
        self.stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        self._pool.shutdown(wait=True)

    def run_forever(self) -> None:
        while not self.stopping.is_set():
            try:
                if not self.run_once():
                    self.stopping.wait(POLL_SECONDS)
            except OperationalError:
                logger.warning("database unavailable; webhook deliveries waiting")
                self.stopping.wait(1.0)
            except Exception:
                logger.exception("webhook delivery loop error")
                self.stopping.wait(1.0)

    def run_once(self) -> bool:
        """Claim as many due deliveries as there are idle threads; False if none was due."""
        self._in_flight = {f for f in self._in_flight if not f.done()}
        free = THREADS - len(self._in_flight)
        if free <= 0:
            self.stopping.wait(0.05)
            return True
        with write_session(self.database) as session:
            claimed = webhook_service.claim_deliveries(
                session, self.worker_id, self.lease_seconds, free
            )
        for delivery in claimed:
            self._in_flight.add(self._pool.submit(self._deliver, delivery))
        return bool(claimed)

    def _deliver(self, delivery: Claimed) -> None:
        started = time.monotonic()
        headers = webhook_service.signed_headers(delivery, utcnow())
        outcome = post(
            delivery.url,
            delivery.body.encode(),
            headers,
            self.settings.webhook_allow_private,
        )
        try:
            with write_session(self.database) as session:
                status = webhook_service.settle_delivery(
                    session,
                    delivery.id,
                    self.worker_id,
                    outcome,
                    backoff_base=self.settings.webhook_backoff_seconds,
                    retry_seconds=self.settings.webhook_retry_seconds,
                )
        except OperationalError:
            # The claim's lease runs out and the delivery is attempted again, same id.
            logger.warning("could not record a webhook delivery", extra={"id": str(delivery.id)})
            return
        result = "lost" if status is None else status.value
        if result == "pending":
            result = "retrying"
        if self.metrics is not None:
            self.metrics.attempted(result, time.monotonic() - started)
        if not outcome.delivered:
            logger.info(
                "webhook delivery attempt failed",
                extra={"id": str(delivery.id), "attempt": delivery.attempts, "why": outcome.error},
            )
