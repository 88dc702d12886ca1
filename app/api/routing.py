"""The route class of every API route: the checks each request gets before its
dependencies, at the cost of a function call rather than a FastAPI dependency (an
app-wide dependency is solved on every request, tens of µs on the hottest routes)."""

import inspect
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from app.api.deps import bearer_scheme
from app.core.errors import InvalidInput
from app.tables import unknown_name_message

_QUERY_KEY_NAMES = frozenset({"api_key", "apikey", "key", "token", "access_token"})


def _flatten(dependant: Dependant) -> list[Dependant]:
    return [dependant, *(d for sub in dependant.dependencies for d in _flatten(sub))]


def query_rules(route: APIRoute) -> tuple[frozenset[str], bool]:
    """The query parameters a route and its dependencies take (by alias), and whether it
    needs a key; a route that reads its query string itself declares both in OpenAPI
    (``deps.openapi_query_parameters``, ``deps.BEARER_SECURITY``)."""
    dependants = _flatten(route.dependant)
    extra = route.openapi_extra or {}
    names = {p.alias for d in dependants for p in d.query_params}
    names.update(p["name"] for p in extra.get("parameters", ()) if p.get("in") == "query")
    needs_key = any(d.call is bearer_scheme for d in dependants) or "security" in extra
    return frozenset(names), needs_key


def check_query_parameters(request: Request, declared: frozenset[str], needs_key: bool) -> None:
    """A query parameter the route does not take is a 422 naming it, never silently
    ignored (a misspelt `special_marks` would otherwise change what is stored). An API key
    in the URL is refused with its own message: it would end up in proxies' logs."""
    names = request.query_params.keys()
    if _QUERY_KEY_NAMES.intersection(names) and "authorization" in request.headers:
        raise InvalidInput(
            "API keys are never accepted in the URL; send 'Authorization: Bearer <key>'",
            loc=["query"],
        )
    if needs_key and "authorization" not in request.headers:
        return  # a 401 comes first: nothing about the route is told to an anonymous caller
    unknown = sorted(set(names) - declared)
    if unknown:
        raise InvalidInput(
            unknown_name_message("query parameter", unknown[0], declared),
            loc=["query", unknown[0]],
            type="unknown_field",
        )


Handler = Callable[[Request], Coroutine[Any, Any, Response]]


class Route(APIRoute):
    """Every route of the API (``create_app`` refuses to start with another): unknown
    query parameters are refused before anything else runs."""

    def endpoint_handler(self) -> Handler:
        """What answers once the checks passed: FastAPI's handler (dependencies, then the
        endpoint, then its response model)."""
        return super().get_route_handler()

    def get_route_handler(self) -> Handler:
        handler = self.endpoint_handler()
        declared, needs_key = query_rules(self)

        async def checked(request: Request) -> Response:
            if request.scope.get("query_string"):
                check_query_parameters(request, declared, needs_key)
            return await handler(request)

        return checked


class DirectRoute(Route):
    """A route whose endpoint takes the request alone and returns a Response, called as it
    is: FastAPI's handler would solve an empty dependency tree and validate no response,
    some 15 µs a request on the hottest routes (/predict, /healthz). Its parameters are
    documented by the route's ``openapi_extra``."""

    def endpoint_handler(self) -> Handler:
        parameters = list(inspect.signature(self.endpoint).parameters.values())
        if [p.annotation for p in parameters] not in ([Request], []):
            raise TypeError(f"{self.path}: a DirectRoute's endpoint takes the request alone")
        endpoint = self.endpoint
        if not parameters:
            return lambda _request: endpoint()
        return endpoint
