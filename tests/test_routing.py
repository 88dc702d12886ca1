"""The route classes (app/api/routing.py) and the request path they make lean: /predict
reads its key and its query string itself, /healthz is called directly, and both are still
documented in OpenAPI as FastAPI would document their parameters; the JSON log lines."""

import json
import logging
import sys
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI, Request, Response

from app.api.routing import DirectRoute, Route
from app.core.logging import JsonLines
from app.main import create_app
from app.schemas.predict import PredictQuery
from tests.conftest import LiveServer


def _openapi(live_server: LiveServer) -> dict[str, Any]:
    document: dict[str, Any] = httpx.get(f"{live_server.url}/openapi.json", timeout=30).json()
    return document


def test_predict_documents_its_query_string_and_key(live_server: LiveServer) -> None:
    operation = _openapi(live_server)["paths"]["/predict"]["post"]
    assert operation["security"] == [{"HTTPBearer": []}]
    parameters = {p["name"]: p for p in operation["parameters"]}
    assert list(parameters) == list(PredictQuery.model_fields)
    for name, parameter in parameters.items():
        assert parameter["in"] == "query"
        assert parameter["required"] is False
        assert parameter["description"] == PredictQuery.model_fields[name].description
    # The constraints a client generator needs, as FastAPI would write them.
    assert parameters["version"]["schema"]["anyOf"][0] == {
        "maximum": 2**31 - 1,
        "minimum": 1,
        "type": "integer",
    }
    assert parameters["fields"]["schema"]["enum"] == ["all", "prediction"]
    assert parameters["fields"]["schema"]["default"] == "all"
    assert "application/json" in operation["requestBody"]["content"]


def test_healthz_is_documented_with_its_answer(live_server: LiveServer) -> None:
    operation = _openapi(live_server)["paths"]["/healthz"]["get"]
    assert operation["summary"] == "Process alive"
    schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert schema["type"] == "object"
    answer = httpx.get(f"{live_server.url}/healthz", timeout=10)
    assert answer.status_code == 200
    assert answer.json() == {"status": "ok"}
    assert answer.headers["content-type"] == "application/json"


def test_predict_query_errors_name_the_parameter(reader: httpx.Client) -> None:
    body = {"model": "nobody", "students": [{"maths": 12}]}
    bad = reader.post("/predict", json=body, params={"version": "0"})
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["loc"] == ["query", "version"]
    assert bad.json()["errors"][0]["type"] == "out_of_range"
    misspelt = reader.post("/predict", json=body, params={"on_eror": "skip"})
    assert misspelt.status_code == 422
    assert misspelt.json()["errors"][0]["loc"] == ["query", "on_eror"]
    assert "on_error" in misspelt.json()["detail"]


def test_predict_without_a_key_is_a_401_before_its_query_is_read(
    live_server: LiveServer,
) -> None:
    answer = httpx.post(
        f"{live_server.url}/predict", params={"limt": "1"}, json={"model": "m"}, timeout=10
    )
    assert answer.status_code == 401
    wrong_scheme = httpx.post(
        f"{live_server.url}/predict",
        json={"model": "m"},
        headers={"Authorization": "Basic Z2M6eA=="},
        timeout=10,
    )
    assert wrong_scheme.status_code == 401


def test_a_direct_route_takes_the_request_alone() -> None:
    router = APIRouter(route_class=DirectRoute)

    async def takes_a_parameter(request: Request, limit: int) -> Response:
        return Response()

    with pytest.raises(TypeError, match="takes the request alone"):
        router.add_api_route("/wrong", takes_a_parameter)


def test_every_route_of_the_app_is_checked() -> None:
    app = create_app()
    routes = [r for r in app.routes if hasattr(r, "dependant")]
    assert routes
    assert all(isinstance(r, Route) for r in routes)
    plain = FastAPI()
    plain.add_api_route("/unchecked", lambda: {})
    assert not isinstance(plain.routes[-1], Route)


def test_json_lines_carry_the_fields_the_extras_and_the_traceback() -> None:
    formatter = JsonLines()
    logger = logging.getLogger("gradecast.test-lines")
    record = logger.makeRecord(
        logger.name,
        logging.INFO,
        __file__,
        0,
        "request %s",
        ("done",),
        None,
        extra={"status": 200, "route": "/predict", "_private": 1, "color_message": "x"},
    )
    line = json.loads(formatter.format(record))
    assert list(line)[:4] == ["time", "level", "logger", "message"]
    assert line["level"] == "INFO"
    assert line["logger"] == "gradecast.test-lines"
    assert line["message"] == "request done"
    assert line["status"] == 200
    assert line["route"] == "/predict"
    assert not {"_private", "color_message", "thread", "args", "msg"} & set(line)
    assert line["time"] == formatter.formatTime(record)
    assert len(line["time"]) == len("2026-09-01 08:00:00,123")

    try:
        raise ValueError("broken")
    except ValueError:
        failed = logger.makeRecord(
            logger.name, logging.ERROR, __file__, 0, "failed", (), sys.exc_info()
        )
    line = json.loads(formatter.format(failed))
    assert line["exc_info"].startswith("Traceback")
    assert "ValueError: broken" in line["exc_info"]
