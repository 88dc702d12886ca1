"""The Idempotency-Key header on POST routes: one mechanism, two parts.

- ``Idempotent``, a dependency placed after the route's principal (so the role is checked
  first): it reads the header, looks up the key in the request's own transaction (waiting for
  a request with the same key that is still running) and either replays the stored answer or
  holds the key for this request.
- ``IdempotentRoute``, the route class of the router: once the route has answered, and before
  the session dependency commits, it stores the answer in that same transaction. A write and
  its stored answer commit together, or neither does (a crash, an error, a rollback).

To make a POST route idempotent: give its router ``route_class=IdempotentRoute`` and add a
parameter ``_idempotency: Idempotent`` after the principal parameter. Nothing else changes.
"""

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, Header, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.routing import APIRoute

from app.api.deps import PrincipalDep, SessionDep
from app.api.routing import Route
from app.db.models import IdempotentAnswer
from app.services import idempotency as idempotency_service
from app.services.idempotency import HEADER, Claim

REPLAYED_HEADER = "Idempotent-Replayed"
_PENDING = "gradecast_idempotency"


class _Replay(Exception):
    """Raised by the dependency to answer with a stored answer instead of running the route."""

    def __init__(self, answer: IdempotentAnswer) -> None:
        super().__init__(HEADER)
        self.answer = answer

    def response(self) -> Response:
        headers = {REPLAYED_HEADER: "true"}
        if self.answer.location is not None:
            headers["Location"] = self.answer.location
        return Response(
            self.answer.body,
            status_code=self.answer.status_code,
            media_type=self.answer.content_type,
            headers=headers,
        )


async def idempotency_key(
    request: Request,
    principal: PrincipalDep,
    session: SessionDep,
    key: Annotated[
        str | None,
        Header(
            alias=HEADER,
            min_length=1,
            max_length=255,
            pattern=r"^[\x21-\x7e]+$",
            description="Any unique string (a UUID): a retry with the same key and the same "
            "request within 24 h gets the first answer back, with no second effect. Scoped "
            "to the organisation. The same key with another request is a 422.",
        ),
    ] = None,
) -> None:
    if key is None:
        return
    body = await request.body()
    print_ = idempotency_service.fingerprint(
        request.method,
        request.url.path,
        request.url.query,
        request.headers.get("content-type", ""),
        body,
    )
    found = await run_in_threadpool(
        idempotency_service.claim, session, principal.organisation_id, key, print_
    )
    if isinstance(found, IdempotentAnswer):
        raise _Replay(found)
    request.scope[_PENDING] = (found, session)


Idempotent = Annotated[None, Depends(idempotency_key)]


def _uses_idempotency(route: APIRoute) -> bool:
    stack = [route.dependant]
    while stack:
        dependant = stack.pop()
        if dependant.call is idempotency_key:
            return True
        stack.extend(dependant.dependencies)
    return False


class IdempotentRoute(Route):
    """Stores the answer of a request that holds an Idempotency-Key, before the commit.
    Routes without the ``Idempotent`` dependency are served as by APIRoute."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        if not _uses_idempotency(self):
            return handler

        async def handle(request: Request) -> Response:
            try:
                response = await handler(request)
            except _Replay as replay:
                return replay.response()
            pending = request.scope.pop(_PENDING, None)
            if pending is not None:
                held, session = pending
                await run_in_threadpool(_store, session, held, response)
            return response

        return handle


def _store(session: Any, held: Claim, response: Response) -> None:
    idempotency_service.store(
        session,
        held,
        status_code=response.status_code,
        content_type=response.headers.get("content-type"),
        location=response.headers.get("location"),
        body=bytes(response.body),
    )
