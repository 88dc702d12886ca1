"""The Open Inference Protocol v2 endpoints, called by a real client (tritonclient[http]),
in JSON and in Triton's binary tensor data extension, against /predict's own answers."""

from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from app.db.models import Role
from tests.conftest import LiveServer, Tenant
from tests.test_predict import register

FEATURES = ("maths", "info", "francais")
GRADES = np.array([[13, 14, 11], [12.5, 9, 15], [20, 0, 7.25]], dtype=np.float64)


@pytest.fixture
def client(live_server: LiveServer) -> Iterator[triton.InferenceServerClient]:
    url = live_server.url.removeprefix("http://")
    with triton.InferenceServerClient(url=url) as connection:
        yield connection


def auth(tenant: Tenant, role: Role = Role.reader) -> dict[str, str]:
    return {"Authorization": f"Bearer {tenant.keys[role]}"}


def inputs(grades: np.ndarray, *, binary: bool) -> list[triton.InferInput]:
    tensors = []
    for j, name in enumerate(FEATURES):
        tensor = triton.InferInput(name, [grades.shape[0]], "FP64")
        tensor.set_data_from_numpy(np.ascontiguousarray(grades[:, j]), binary_data=binary)
        tensors.append(tensor)
    return tensors


def test_health_needs_no_key(client: triton.InferenceServerClient) -> None:
    assert client.is_server_live()
    assert client.is_server_ready()


@pytest.mark.parametrize("binary", [False, True])
def test_infer_gives_predict_s_figures(
    client: triton.InferenceServerClient,
    tenant: Tenant,
    reader: httpx.Client,
    trainer: httpx.Client,
    binary: bool,
) -> None:
    register(trainer, residual_std=1.2, n_train=500)
    students = [
        {"id": str(i), **dict(zip(FEATURES, row, strict=True))}
        for i, row in enumerate(GRADES.tolist())
    ]
    expected = reader.post("/predict", json={"model": "concours", "students": students}).json()
    outputs = [
        triton.InferRequestedOutput(name, binary_data=binary)
        for name in ("prediction", "raw", "interval_low", "interval_high", "extrapolated")
    ]
    result = client.infer(
        "concours",
        inputs(GRADES, binary=binary),
        outputs=outputs,
        request_id="r1",
        headers=auth(tenant),
    )
    response = result.get_response()
    assert response["model_name"] == "concours"
    assert response["model_version"] == "1"
    assert response["id"] == "r1"
    predictions = expected["predictions"]
    assert result.as_numpy("prediction").tolist() == [p["prediction"] for p in predictions]
    assert result.as_numpy("raw").tolist() == [p["raw"] for p in predictions]
    assert result.as_numpy("interval_low").tolist() == [p["interval"][0] for p in predictions]
    assert result.as_numpy("interval_high").tolist() == [p["interval"][1] for p in predictions]
    assert result.as_numpy("extrapolated").tolist() == [False] * 3
    assert result.as_numpy("prediction")[0] == 12.54


def test_metadata_names_the_features_and_a_pinned_version_answers(
    client: triton.InferenceServerClient, tenant: Tenant, trainer: httpx.Client
) -> None:
    register(trainer)
    register(trainer, theta=[2, 0.33, 0.33, 0.33], activate=False)
    metadata = client.get_model_metadata("concours", headers=auth(tenant))
    assert metadata["name"] == "concours"
    assert sorted(metadata["versions"]) == ["1", "2"]
    assert metadata["inputs"] == [{"name": f, "datatype": "FP64", "shape": [-1]} for f in FEATURES]
    assert [o["name"] for o in metadata["outputs"]] == ["prediction", "raw", "extrapolated"]
    assert client.is_model_ready("concours", headers=auth(tenant))
    assert client.is_model_ready("concours", "2", headers=auth(tenant))
    assert not client.is_model_ready("concours", "3", headers=auth(tenant))
    pinned = client.infer("concours", inputs(GRADES[:1], binary=True), "2", headers=auth(tenant))
    assert pinned.get_response()["model_version"] == "2"
    assert pinned.as_numpy("prediction").tolist() == [14.54]


def test_keys_roles_and_organisations_apply(
    client: triton.InferenceServerClient,
    tenant: Tenant,
    other_tenant: Tenant,
    trainer: httpx.Client,
) -> None:
    register(trainer)
    with pytest.raises(InferenceServerException, match="API key"):
        client.infer("concours", inputs(GRADES, binary=True))
    with pytest.raises(InferenceServerException, match="no model named 'concours'"):
        client.infer("concours", inputs(GRADES, binary=True), headers=auth(other_tenant))
    with pytest.raises(InferenceServerException, match="no model named"):
        client.get_model_metadata("concours", headers=auth(other_tenant))


def test_bad_tensors_are_refused_naming_input_and_pupil(
    client: triton.InferenceServerClient, tenant: Tenant, trainer: httpx.Client
) -> None:
    register(trainer)
    out_of_range = GRADES.copy()
    out_of_range[2, 1] = 21
    with pytest.raises(InferenceServerException, match=r"inputs\.info\[2\]"):
        client.infer("concours", inputs(out_of_range, binary=True), headers=auth(tenant))
    not_finite = GRADES.copy()
    not_finite[1, 0] = np.nan
    with pytest.raises(InferenceServerException, match=r"inputs\.maths\[1\].*finite"):
        client.infer("concours", inputs(not_finite, binary=True), headers=auth(tenant))
    with pytest.raises(InferenceServerException, match="no input 'francais'"):
        client.infer("concours", inputs(GRADES, binary=False)[:2], headers=auth(tenant))


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"inputs": []}, ["body", "inputs"]),
        (
            {"inputs": [{"name": "maths", "shape": [1], "datatype": "BYTES", "data": ["a"]}]},
            ["body", "inputs"],
        ),
        (
            {
                "inputs": [
                    {"name": f, "shape": [1], "datatype": "FP64", "data": [True]} for f in FEATURES
                ]
            },
            ["body", "inputs", 0, "data"],
        ),
        (
            {
                "inputs": [
                    {"name": f, "shape": [2], "datatype": "FP64", "data": [1]} for f in FEATURES
                ]
            },
            ["body", "inputs", 0, "data"],
        ),
        (
            {
                "inputs": [
                    {"name": f, "shape": [1, 3], "datatype": "FP64", "data": [1]} for f in FEATURES
                ]
            },
            ["body", "inputs", 0, "shape"],
        ),
        (
            {
                "inputs": [
                    {"name": f, "shape": [1], "datatype": "FP64", "data": [1]} for f in FEATURES
                ],
                "outputs": [{"name": "interval_low"}],
            },
            ["body", "outputs", 0, "name"],
        ),
    ],
)
def test_bad_bodies_are_a_422_in_the_protocol_s_shape(
    reader: httpx.Client, trainer: httpx.Client, body: dict[str, Any], loc: list[Any]
) -> None:
    register(trainer)
    response = reader.post("/v2/models/concours/infer", json=body)
    assert response.status_code == 422, response.text
    answer = response.json()
    assert answer["error"] == answer["detail"]
    assert answer["errors"][0]["loc"][: len(loc)] == loc


def test_a_binary_header_longer_than_the_body_is_a_422(
    reader: httpx.Client, trainer: httpx.Client
) -> None:
    register(trainer)
    response = reader.post(
        "/v2/models/concours/infer",
        content=b'{"inputs": []}',
        headers={"Inference-Header-Content-Length": "400"},
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["header", "inference-header-content-length"]
