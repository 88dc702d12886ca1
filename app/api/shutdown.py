"""Graceful shutdown: a server process drains before uvicorn stops it.

On SIGTERM uvicorn closes its listening socket, then every idle keep-alive connection at
once. A client that sent a request on such a connection in that instant gets a reset:
HTTP/1.1 lets a server close an idle connection at any time, and clients do not resend a
POST. So on SIGTERM a process first drains for GRADECAST_SHUTDOWN_DRAIN_SECONDS: it keeps
serving, answers every request with ``Connection: close`` (so the client opens its next
connection to another process or replica, after it has its answer), and ``/readyz`` says
503; then uvicorn's own graceful shutdown runs (it finishes the requests in flight).
"""

import logging
import signal
import threading
from types import FrameType

from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger("gradecast")

_CLOSE = (b"connection", b"close")


class Drain:
    """Whether this process is draining, and the SIGTERM handler that starts the drain."""

    def __init__(self) -> None:
        self.started = threading.Event()

    def install(self, seconds: float) -> None:
        """Put the drain in front of the SIGTERM handler that uvicorn installed (it restores
        the previous handlers itself when it stops). Only in the main thread, where signals
        are handled: a server run in a thread (the tests' live servers) has no drain. With
        no drain (0 s) SIGTERM still marks the process as stopping, at once: requests that
        wait (`GET /jobs/{id}?wait=`) answer then, rather than hold uvicorn's shutdown."""
        if threading.current_thread() is not threading.main_thread():
            return
        uvicorn_handler = signal.getsignal(signal.SIGTERM)
        if not callable(uvicorn_handler):
            return

        def on_sigterm(signum: int, frame: FrameType | None) -> None:
            if self.started.is_set() or seconds <= 0:  # no drain, or a second SIGTERM
                self.started.set()
                uvicorn_handler(signum, frame)
                return
            self.started.set()
            logger.info("draining before shutdown", extra={"seconds": seconds})
            timer = threading.Timer(seconds, uvicorn_handler, (signum, frame))
            timer.daemon = True
            timer.start()

        signal.signal(signal.SIGTERM, on_sigterm)


class CloseWhileDraining:
    """Pure ASGI: while the process drains, every response closes its connection."""

    def __init__(self, app: ASGIApp, drain: Drain) -> None:
        self.app = app
        self.drain = drain

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_closing(message: Message) -> None:
            if message["type"] == "http.response.start" and self.drain.started.is_set():
                message["headers"] = [*message.get("headers", ()), _CLOSE]
            await send(message)

        await self.app(scope, receive, send_closing)
