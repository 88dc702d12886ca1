"""A catalogue of hostile inputs across cohorts, jobs, model versions and /predict: each gets
its 4xx in the one error shape, ``errors[0].loc`` names the field, and nothing is stored.
Then bodies over the size limit, refused while they stream into a server process of its own
whose memory is watched."""

import json
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from app.core.errors import INPUT_ERROR_TYPES
from app.db.migrations import upgrade_to_head
from app.db.models import Role
from tests.conftest import Tenant
from tests.processes import ServerProcess
from tests.test_cohorts import cohort_json
from tests.test_models import version_body

TRAVERSAL = "../../etc/passwd"
ENCODED_TRAVERSAL = "%2e%2e%2f%2e%2e%2fetc%2fpasswd"
METADATA_URL = "http://169.254.169.254/"
MEGABYTE_NAME = "n" * 1_000_000
UNKNOWN_COHORT = "00000000-0000-4000-8000-000000000000"


@dataclass
class Case:
    name: str
    method: str
    path: str
    status: int
    loc: list[Any] | None  # None: the router's own 404, which names no field
    json: Any = None
    content: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    role: Role = Role.trainer


def raw(text: str | bytes) -> dict[str, Any]:
    data = text.encode() if isinstance(text, str) else text
    return {"content": data, "headers": {"Content-Type": "application/json"}}


def csv(data: bytes, **params: str) -> dict[str, Any]:
    return {
        "content": data,
        "headers": {"Content-Type": "text/csv"},
        "params": {"name": "hostile", **params},
    }


def student(**grades: Any) -> dict[str, Any]:
    return {"id": "s", "maths": 10, "info": 10, "francais": 10, "concours": 10, **grades}


def cohort_with(**grades: Any) -> dict[str, Any]:
    return cohort_json(name="hostile", students=[student(id="a"), student(**{"id": "b", **grades})])


def raw_cohort(token: str) -> str:
    return (
        '{"name":"raw","features":["maths"],"target":"concours","students":'
        '[{"maths":1,"concours":2},{"maths":' + token + ',"concours":3}]}'
    )


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def million_pupils() -> bytes:
    row = b'{"a":1,"b":2},'
    body = b'{"name":"big","features":["a"],"target":"b","students":['
    return body + row * 1_000_000 + b'{"a":1,"b":2}]}'


def predict_body(**grades: Any) -> dict[str, Any]:
    pupil = {"id": "p", "maths": 13, "info": 14, "francais": 11, **grades}
    return {"model": "concours", "students": [pupil]}


V2_INFER = "/v2/models/concours/infer"


def v2_columns() -> dict[str, list[Any]]:
    return {"maths": [13], "info": [14], "francais": [11]}


def v2_body(**data: list[Any]) -> dict[str, Any]:
    columns = {**v2_columns(), **data}
    return {
        "inputs": [
            {"name": name, "shape": [len(values)], "datatype": "FP64", "data": values}
            for name, values in columns.items()
        ]
    }


def v2_binary(grades: list[float], declared: int = 8) -> dict[str, Any]:
    """One pupil's grades as Triton's binary tensor data extension sends them."""
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": name,
                    "shape": [1],
                    "datatype": "FP64",
                    "parameters": {"binary_data_size": declared},
                }
                for name in ("maths", "info", "francais")
            ]
        }
    ).encode()
    content = header + struct.pack("<3d", *grades)
    return {
        "content": content,
        "headers": {
            "Content-Type": "application/octet-stream",
            "Inference-Header-Content-Length": str(len(header)),
        },
    }


def job(**fields: Any) -> dict[str, Any]:
    return {"cohort_id": "{cohort_id}", "model": "hostile", "algorithm": "gd", **fields}


STUDENTS = ["body", "students"]
FOLDS = ["body", "folds"]
CSV_HEADER = b"id;maths;concours\n"

CASES: list[Case] = [
    # Cohorts, JSON
    Case("cohort NaN", "POST", "/cohorts", 422, ["body"], **raw(raw_cohort("NaN"))),
    Case("cohort +inf", "POST", "/cohorts", 422, ["body"], **raw(raw_cohort("Infinity"))),
    Case("cohort -inf", "POST", "/cohorts", 422, ["body"], **raw(raw_cohort("-Infinity"))),
    Case("cohort 1e999", "POST", "/cohorts", 422, ["body"], **raw(raw_cohort("1e999"))),
    Case(
        "cohort '12,5'",
        "POST",
        "/cohorts",
        422,
        [*STUDENTS, 1, "maths"],
        json=cohort_with(maths="12,5"),
    ),
    Case(
        "cohort 1e308",
        "POST",
        "/cohorts",
        422,
        [*STUDENTS, 1, "info"],
        json=cohort_with(info=1e308),
    ),
    Case(
        "cohort negative",
        "POST",
        "/cohorts",
        422,
        [*STUDENTS, 1, "concours"],
        json=cohort_with(concours=-0.5),
    ),
    Case("cohort no pupils", "POST", "/cohorts", 422, STUDENTS, json=cohort_json(students=[])),
    Case(
        "cohort empty features",
        "POST",
        "/cohorts",
        422,
        ["body", "features"],
        json=cohort_json(features=[]),
    ),
    Case("cohort 10^6+1 pupils", "POST", "/cohorts", 413, STUDENTS, **raw(million_pupils())),
    Case(
        "cohort student nested 10,000 deep",
        "POST",
        "/cohorts",
        422,
        ["body"],
        **raw(raw_cohort(nested(10_000))),
    ),
    Case(
        "cohort body nested 10,000 deep", "POST", "/cohorts", 422, ["body"], **raw(nested(10_000))
    ),
    Case(
        "cohort unknown field",
        "POST",
        "/cohorts",
        422,
        ["body", "owner"],
        json=cohort_json(owner="x"),
    ),
    Case(
        "cohort features not a list",
        "POST",
        "/cohorts",
        422,
        ["body", "features"],
        json=cohort_json(features="maths"),
    ),
    Case(
        "cohort grade an object",
        "POST",
        "/cohorts",
        422,
        [*STUDENTS, 1, "maths"],
        json=cohort_with(maths={"$gt": 0}),
    ),
    Case(
        "cohort feature traversal",
        "POST",
        "/cohorts",
        422,
        ["body", "features", 0],
        json=cohort_json(features=[TRAVERSAL, "info", "francais"]),
    ),
    Case(
        "cohort target URL",
        "POST",
        "/cohorts",
        422,
        ["body", "target"],
        json=cohort_json(target=METADATA_URL),
    ),
    Case(
        "cohort 1 MB name",
        "POST",
        "/cohorts",
        422,
        ["body", "name"],
        json=cohort_json(name=MEGABYTE_NAME),
    ),
    Case(
        "cohort NUL in name",
        "POST",
        "/cohorts",
        422,
        ["body", "name"],
        json=cohort_json(name="a\x00b"),
    ),
    Case(
        "cohort NUL in pupil id",
        "POST",
        "/cohorts",
        422,
        [*STUDENTS, 1, "id"],
        json=cohort_with(id="b\x00"),
    ),
    Case("cohort body a number", "POST", "/cohorts", 422, ["body"], **raw("42")),
    Case("cohort body an array", "POST", "/cohorts", 422, ["body"], **raw("[1, 2]")),
    Case("cohort body null", "POST", "/cohorts", 422, ["body"], **raw("null")),
    Case(
        "cohort invalid UTF-8 JSON",
        "POST",
        "/cohorts",
        422,
        ["body"],
        **raw(b'{"name": "\xff\xfe"}'),
    ),
    Case(
        "cohort XML",
        "POST",
        "/cohorts",
        415,
        ["header", "content-type"],
        content=b"<cohort/>",
        headers={"Content-Type": "application/xml"},
    ),
    Case(
        "cohort no Content-Type", "POST", "/cohorts", 415, ["header", "content-type"], content=b"{}"
    ),
    # Cohorts, CSV
    Case(
        "csv invalid UTF-8",
        "POST",
        "/cohorts",
        422,
        ["body", "csv"],
        **csv(CSV_HEADER + b"1;12;14\n\xff\xfe;5;7\n"),
    ),
    Case(
        "csv ragged row",
        "POST",
        "/cohorts",
        422,
        ["body", "csv", 2],
        **csv(CSV_HEADER + b"1;12;14\n2;7\n"),
    ),
    Case("csv only a header", "POST", "/cohorts", 422, ["body", "csv"], **csv(CSV_HEADER)),
    Case(
        "csv 10,000 columns",
        "POST",
        "/cohorts",
        422,
        ["body", "csv"],
        **csv(
            ";".join(f"c{i}" for i in range(10_000)).encode()
            + b"\n"
            + (";".join(["1"] * 10_000).encode() + b"\n") * 2
        ),
    ),
    Case(
        "csv NUL bytes",
        "POST",
        "/cohorts",
        422,
        ["body", "csv"],
        **csv(CSV_HEADER + b"1;12;14\n2\x00;5;7\n"),
    ),
    Case(
        "csv '12,5' with commas",
        "POST",
        "/cohorts",
        422,
        ["body", "csv", 2],
        **csv(b"id,maths,concours\n1,12,14\n2,12,5,7\n"),
    ),
    Case(
        "csv name of 201 characters",
        "POST",
        "/cohorts",
        422,
        ["query", "name"],
        **csv(CSV_HEADER + b"1;1;2\n2;3;4\n", name="n" * 201),
    ),
    Case(
        "csv id_column URL",
        "POST",
        "/cohorts",
        422,
        ["query", "id_column"],
        **csv(CSV_HEADER + b"1;1;2\n2;3;4\n", id_column=METADATA_URL),
    ),
    # Cohort ids in the path
    Case("cohort id traversal", "GET", f"/cohorts/{ENCODED_TRAVERSAL}", 404, None),
    Case("cohort id dots", "GET", "/cohorts/...", 422, ["path", "cohort_id"]),
    Case("cohort id URL", "DELETE", "/cohorts/http:169.254.169.254", 422, ["path", "cohort_id"]),
    # Jobs
    Case(
        "job NaN learning rate",
        "POST",
        "/jobs",
        422,
        ["body", "learning_rate"],
        **raw('{"cohort_id": "{cohort_id}", "learning_rate": NaN}'),
    ),
    Case(
        "job +inf l2",
        "POST",
        "/jobs",
        422,
        ["body", "l2"],
        **raw('{"cohort_id": "{cohort_id}", "l2": Infinity}'),
    ),
    Case(
        "job '12,5' learning rate",
        "POST",
        "/jobs",
        422,
        ["body", "learning_rate"],
        json=job(learning_rate="12,5"),
    ),
    Case(
        "job 1e308 learning rate",
        "POST",
        "/jobs",
        422,
        ["body", "learning_rate"],
        json=job(learning_rate=1e308),
    ),
    Case("job negative epochs", "POST", "/jobs", 422, ["body", "epochs"], json=job(epochs=-1)),
    Case(
        "job empty init_theta",
        "POST",
        "/jobs",
        422,
        ["body", "init_theta"],
        json=job(init_theta=[]),
    ),
    Case(
        "job unknown field",
        "POST",
        "/jobs",
        422,
        ["body", "webhook"],
        json=job(webhook=METADATA_URL),
    ),
    Case(
        "job cohort_id traversal",
        "POST",
        "/jobs",
        422,
        ["body", "cohort_id"],
        json=job(cohort_id=TRAVERSAL),
    ),
    Case(
        "job gate with activate=always",
        "POST",
        "/jobs",
        422,
        ["body", "gate_cohort_id"],
        json=job(activate="always", gate_cohort_id=UNKNOWN_COHORT),
    ),
    Case(
        "job gate on the training cohort",
        "POST",
        "/jobs",
        422,
        ["body", "gate_cohort_id"],
        json=job(gate_cohort_id="{cohort_id}"),
    ),
    Case(
        "job gate on an unknown cohort",
        "POST",
        "/jobs",
        404,
        ["body", "gate_cohort_id"],
        json=job(gate_cohort_id=UNKNOWN_COHORT),
    ),
    Case(
        "job gate traversal",
        "POST",
        "/jobs",
        422,
        ["body", "gate_cohort_id"],
        json=job(gate_cohort_id=TRAVERSAL),
    ),
    Case("job model traversal", "POST", "/jobs", 422, ["body", "model"], json=job(model=TRAVERSAL)),
    Case("job folds 1", "POST", "/jobs", 422, FOLDS, json=job(validation="kfold", folds=1)),
    Case("job folds 21", "POST", "/jobs", 422, FOLDS, json=job(validation="kfold", folds=21)),
    Case("job folds '5'", "POST", "/jobs", 422, FOLDS, json=job(validation="kfold", folds="5")),
    Case("job folds true", "POST", "/jobs", 422, FOLDS, json=job(validation="kfold", folds=True)),
    Case("job folds 2.5", "POST", "/jobs", 422, FOLDS, json=job(validation="kfold", folds=2.5)),
    Case("job folds 1e308", "POST", "/jobs", 422, FOLDS, json=job(validation="kfold", folds=1e308)),
    Case("job folds null", "POST", "/jobs", 422, FOLDS, json=job(validation="kfold", folds=None)),
    # The base cohort has 4 pupils: 5 folds cannot each hold one back.
    Case("job folds > pupils", "POST", "/jobs", 422, FOLDS, json=job(validation="kfold", folds=5)),
    Case(
        "job kfold with a hold-out",
        "POST",
        "/jobs",
        422,
        ["body", "validation_fraction"],
        json=job(validation="kfold", folds=2, validation_fraction=0.25),
    ),
    Case(
        "job validation loo",
        "POST",
        "/jobs",
        422,
        ["body", "validation"],
        json=job(validation="loo"),
    ),
    Case("job model URL", "POST", "/jobs", 422, ["body", "model"], json=job(model=METADATA_URL)),
    Case("job body null", "POST", "/jobs", 422, ["body"], **raw("null")),
    Case("job id traversal", "GET", f"/jobs/{ENCODED_TRAVERSAL}", 404, None),
    Case("job id not a uuid", "POST", "/jobs/1 OR 1=1/cancel", 422, ["path", "job_id"]),
    # Model versions
    Case(
        "version NaN theta",
        "POST",
        "/models/m/versions",
        422,
        ["body", "theta", 1],
        **raw('{"features":["maths"],"target":"concours","theta":[0,NaN]}'),
    ),
    Case(
        "version -inf theta",
        "POST",
        "/models/m/versions",
        422,
        ["body", "theta", 0],
        **raw('{"features":["maths"],"target":"concours","theta":[-Infinity,1]}'),
    ),
    Case(
        "version '12,5' theta",
        "POST",
        "/models/m/versions",
        422,
        ["body", "theta", 1],
        json=version_body(theta=[0, "12,5", 0, 0]),
    ),
    Case(
        "version negative sigma",
        "POST",
        "/models/m/versions",
        422,
        ["body", "residual_std"],
        json=version_body(residual_std=-1),
    ),
    Case(
        "version empty features",
        "POST",
        "/models/m/versions",
        422,
        ["body", "features"],
        json=version_body(features=[]),
    ),
    Case(
        "version feature traversal",
        "POST",
        "/models/m/versions",
        422,
        ["body", "features", 0],
        json=version_body(features=[TRAVERSAL, "info", "francais"]),
    ),
    Case(
        "version feature URL",
        "POST",
        "/models/m/versions",
        422,
        ["body", "features", 1],
        json=version_body(features=["maths", METADATA_URL, "francais"]),
    ),
    Case(
        "version NUL label",
        "POST",
        "/models/m/versions",
        422,
        ["body", "feature_labels", 0],
        json=version_body(feature_labels=["a\x00", "b", "c"]),
    ),
    Case(
        "version reason 1 MB",
        "POST",
        "/models/m/versions",
        422,
        ["body", "reason"],
        json=version_body(reason=MEGABYTE_NAME),
    ),
    Case(
        "version model name traversal",
        "POST",
        f"/models/{ENCODED_TRAVERSAL}/versions",
        404,
        None,
        json=version_body(),
    ),
    Case(
        "version model name dots",
        "POST",
        "/models/..x/versions",
        422,
        ["path", "name"],
        json=version_body(),
    ),
    Case(
        "version model name URL",
        "POST",
        "/models/http:169.254.169.254/versions",
        422,
        ["path", "name"],
        json=version_body(),
    ),
    Case(
        "version model name 1 MB",
        "POST",
        "/models/m/versions",
        422,
        ["body"],
        json=[version_body()],
    ),
    Case(
        "activation version 2^63",
        "PUT",
        "/models/concours/active",
        422,
        ["body", "version"],
        json={"version": 2**63},
    ),
    Case(
        "activation reason NUL",
        "PUT",
        "/models/concours/active",
        422,
        ["body", "reason"],
        json={"version": 1, "reason": "\x00"},
    ),
    Case(
        "activation reason URL 1 MB",
        "PUT",
        "/models/concours/active",
        422,
        ["body", "reason"],
        json={"version": 1, "reason": METADATA_URL * 50_000},
    ),
    Case(
        "version path not a number",
        "GET",
        "/models/concours/versions/1e308",
        422,
        ["path", "version"],
    ),
    # Predict
    Case(
        "predict NaN",
        "POST",
        "/predict",
        422,
        ["body"],
        **raw('{"model":"concours","students":[{"maths":NaN,"info":1,"francais":1}]}'),
    ),
    Case(
        "predict +inf",
        "POST",
        "/predict",
        422,
        ["body"],
        **raw('{"model":"concours","students":[{"maths":Infinity,"info":1,"francais":1}]}'),
    ),
    Case(
        "predict '12,5'",
        "POST",
        "/predict",
        422,
        [*STUDENTS, 0, "maths"],
        json=predict_body(maths="12,5"),
    ),
    Case(
        "predict 1e308",
        "POST",
        "/predict",
        422,
        [*STUDENTS, 0, "info"],
        json=predict_body(info=1e308),
    ),
    Case(
        "predict negative",
        "POST",
        "/predict",
        422,
        [*STUDENTS, 0, "francais"],
        json=predict_body(francais=-1),
    ),
    Case(
        "predict no pupils",
        "POST",
        "/predict",
        422,
        STUDENTS,
        json={"model": "concours", "students": []},
    ),
    Case(
        "predict 10,001 pupils",
        "POST",
        "/predict",
        413,
        STUDENTS,
        json={"model": "concours", "students": [predict_body()["students"][0]] * 10_001},
    ),
    Case(
        "predict pupil nested 10,000 deep",
        "POST",
        "/predict",
        422,
        ["body"],
        **raw('{"model":"concours","students":[' + nested(10_000) + "]}"),
    ),
    Case(
        "predict model traversal",
        "POST",
        "/predict",
        422,
        ["body", "model"],
        json={**predict_body(), "model": TRAVERSAL},
    ),
    Case(
        "predict model URL",
        "POST",
        "/predict",
        422,
        ["body", "model"],
        json={**predict_body(), "model": METADATA_URL},
    ),
    Case(
        "predict model 1 MB",
        "POST",
        "/predict",
        422,
        ["body", "model"],
        json={**predict_body(), "model": MEGABYTE_NAME},
    ),
    Case(
        "predict feature URL",
        "POST",
        "/predict",
        422,
        [*STUDENTS, 0, METADATA_URL],
        json=predict_body(**{METADATA_URL: 1}),
    ),
    Case(
        "predict unknown field",
        "POST",
        "/predict",
        422,
        ["body", "callback"],
        json={**predict_body(), "callback": METADATA_URL},
    ),
    Case("predict body a number", "POST", "/predict", 422, ["body"], **raw("1e308")),
    Case(
        "predict CSV model traversal",
        "POST",
        "/predict",
        422,
        ["query", "model"],
        content=b"maths;info;francais\n1;2;3\n",
        headers={"Content-Type": "text/csv"},
        params={"model": TRAVERSAL},
    ),
    Case(
        "predict CSV NUL",
        "POST",
        "/predict",
        422,
        ["body", "csv"],
        content=b"maths;info;francais\n1\x00;2;3\n",
        headers={"Content-Type": "text/csv"},
        params={"model": "concours"},
    ),
    Case(
        "predict columns unknown column URL",
        "POST",
        "/predict",
        422,
        ["body", "columns", METADATA_URL],
        json={"model": "concours", "columns": {**v2_columns(), METADATA_URL: [1]}},
    ),
    Case(
        "predict columns 10,001 pupils",
        "POST",
        "/predict",
        413,
        ["body", "columns", "maths"],
        json={"model": "concours", "columns": {"maths": [1] * 10_001}},
    ),
    Case(
        "predict columns a grade as text",
        "POST",
        "/predict",
        422,
        ["body", "columns", "info", 0],
        json={"model": "concours", "columns": {**v2_columns(), "info": ["12,5"]}},
    ),
    # Open Inference Protocol v2
    Case(
        "v2 infer NaN as binary",
        "POST",
        V2_INFER,
        422,
        ["body", "inputs", "maths", 0],
        **v2_binary([float("nan"), 14.0, 11.0]),
    ),
    Case(
        "v2 infer binary size beyond the body",
        "POST",
        V2_INFER,
        422,
        ["body", "inputs", 0, "parameters", "binary_data_size"],
        **v2_binary([13.0, 14.0, 11.0], declared=80),
    ),
    Case(
        "v2 infer header length not a number",
        "POST",
        V2_INFER,
        422,
        ["header", "inference-header-content-length"],
        json=v2_body(),
        headers={"Inference-Header-Content-Length": "1e308"},
    ),
    Case(
        "v2 infer data as text",
        "POST",
        V2_INFER,
        422,
        ["body", "inputs", 0, "data"],
        json=v2_body(maths=["12,5"]),
    ),
    Case(
        "v2 infer 10,001 pupils",
        "POST",
        V2_INFER,
        413,
        ["body", "inputs"],
        json=v2_body(**{f: [1.0] * 10_001 for f in ("maths", "info", "francais")}),
    ),
    Case(
        "v2 infer data nested 10,000 deep",
        "POST",
        V2_INFER,
        422,
        ["body"],
        **raw(
            '{"inputs": [{"name": "maths", "shape": [1], "datatype": "FP64", "data": '
            + nested(10_000)
            + "}]}"
        ),
    ),
    Case(
        "v2 infer unknown field",
        "POST",
        V2_INFER,
        422,
        ["body", "callback"],
        json={**v2_body(), "callback": METADATA_URL},
    ),
    Case("v2 infer model name traversal", "POST", "/v2/models/..%2F..%2Fetc/infer", 404, None),
    Case("v2 metadata model name hidden", "GET", "/v2/models/.hidden", 422, ["path", "name"]),
    Case(
        "v2 version path not a number",
        "POST",
        "/v2/models/concours/versions/1e308/infer",
        422,
        ["path", "version"],
        json=v2_body(),
    ),
    # Real exports (issue 11): each new option, refused naming the field.
    Case(
        "cohort special mark under refuse",
        "POST",
        "/cohorts",
        422,
        ["body", "csv", 2, "Maths"],
        **csv(b"id;Maths;Concours\na;12;12\nb;Abs;13\n"),
    ),
    Case(
        "cohort unknown code (refuse or drop)",
        "POST",
        "/cohorts",
        422,
        ["body", "csv", 2, "Maths"],
        **csv(b"id;Maths;Concours\na;12;12\nb;Absnt;13\n", special_marks="drop"),
    ),
    Case(
        "cohort features naming a missing column",
        "POST",
        "/cohorts",
        422,
        ["query", "features"],
        **csv(b"id;Maths;Concours\na;12;12\nb;11;13\n", features="Maths,Physique"),
    ),
    Case(
        "cohort group_column equal to a feature",
        "POST",
        "/cohorts",
        422,
        ["query", "features"],
        **csv(
            b"id;Classe;Maths;Concours\na;3A;12;12\nb;3B;11;13\n",
            features="Maths,Classe",
            group_column="Classe",
        ),
    ),
    Case(
        "cohort JSON group_column equal to a feature",
        "POST",
        "/cohorts",
        422,
        ["body", "group_column"],
        json=cohort_json(name="hostile", group_column="maths"),
    ),
    Case(
        "cohort group label over 50 characters",
        "POST",
        "/cohorts",
        422,
        ["body", "csv", 2, "Classe"],
        **csv(
            b"id;Classe;Maths;Concours\na;3A;12;12\nb;" + b"x" * 51 + b";11;13\n",
            group_column="Classe",
        ),
    ),
    Case(
        "cohort a/b with b = 0",
        "POST",
        "/cohorts",
        422,
        ["body", "csv", 2, "Maths"],
        **csv(b"id;Maths;Concours\na;12;12\nb;5/0;13\n"),
    ),
    Case(
        "cohort a/b with a > b",
        "POST",
        "/cohorts",
        422,
        ["body", "csv", 1, "Maths"],
        **csv(b"id;Maths;Concours\na;21/20;12\nb;5;13\n"),
    ),
    Case(
        "cohort special_marks unknown",
        "POST",
        "/cohorts",
        422,
        ["query", "special_marks"],
        **csv(b"id;Maths;Concours\na;12;12\nb;11;13\n", special_marks="keep"),
    ),
    Case(
        "cohort every pupil dropped",
        "POST",
        "/cohorts",
        422,
        ["body", "csv"],
        **csv(b"id;Maths;Concours\na;Abs;12\nb;Disp;13\n", special_marks="drop"),
    ),
    Case("erase an unknown pupil", "DELETE", "/students/erased-twice", 404, ["path", "student_id"]),
    Case(
        "query parameter misspelt",
        "POST",
        "/cohorts",
        422,
        ["query", "special_mark"],
        **csv(b"id;Maths;Concours\na;12;12\nb;11;13\n", special_mark="drop"),
    ),
    Case(
        "predict on_error unknown",
        "POST",
        "/predict",
        422,
        ["body", "on_error"],
        json={**predict_body(), "on_error": "ignore"},
    ),
    Case(
        "predict CSV features naming a missing column",
        "POST",
        "/predict",
        422,
        ["query", "features"],
        content=b"maths;info;francais\n1;2;3\n",
        headers={"Content-Type": "text/csv"},
        params={"model": "concours", "features": "maths,physique"},
    ),
    Case(
        "evaluate on an unknown cohort",
        "POST",
        "/models/concours/versions/1/evaluations",
        404,
        ["body", "cohort_id"],
        json={"cohort_id": "00000000-0000-4000-8000-000000000000"},
    ),
    Case(
        "evaluate with a cohort_id that is no uuid",
        "POST",
        "/models/concours/versions/1/evaluations",
        422,
        ["body", "cohort_id"],
        json={"cohort_id": TRAVERSAL},
    ),
    Case(
        "evaluate a version the model does not have",
        "POST",
        "/models/concours/versions/99/evaluations",
        404,
        ["path", "version"],
        json={"cohort_id": "{cohort_id}"},
    ),
    Case(
        "evaluate with an unknown field",
        "POST",
        "/models/concours/versions/1/evaluations",
        422,
        ["body", "gate"],
        json={"cohort_id": "{cohort_id}", "gate": True},
    ),
    Case(
        "leaderboard without cohort_id",
        "GET",
        "/models/concours/evaluations",
        422,
        ["query", "cohort_id"],
    ),
    Case(
        "predict form",
        "POST",
        "/predict",
        415,
        ["header", "content-type"],
        content=b"a=1",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    ),
    # Idempotency-Key (a malformed key is refused before anything runs)
    Case(
        "idempotency key of 256 characters",
        "POST",
        "/models/concours/versions",
        422,
        ["header", "Idempotency-Key"],
        json=version_body(),
        headers={"Idempotency-Key": "k" * 256},
    ),
    Case(
        "idempotency key empty",
        "POST",
        "/jobs",
        422,
        ["header", "Idempotency-Key"],
        json=job(algorithm="closed_form"),
        headers={"Idempotency-Key": ""},
    ),
    Case(
        "idempotency key with spaces",
        "POST",
        "/cohorts",
        422,
        ["header", "Idempotency-Key"],
        json=cohort_json(name="idem"),
        headers={"Idempotency-Key": "a key; DROP TABLE"},
    ),
    Case(
        "retain_until a Unix time in 2096",
        "POST",
        "/cohorts",
        422,
        ["query", "retain_until"],
        json=cohort_json(name="unix"),
        params={"retain_until": "4000000000"},
    ),
    Case(
        "erase a pupil whose id has a tab",
        "DELETE",
        "/students/a%09b",
        422,
        ["path", "student_id"],
    ),
    Case(
        "retain_until in the past",
        "POST",
        "/cohorts",
        422,
        ["query", "retain_until"],
        json=cohort_json(name="expired"),
        params={"retain_until": "1970-01-01T00:00:00Z"},
    ),
    Case(
        "retain_until past year 9999",
        "POST",
        "/cohorts",
        422,
        ["query", "retain_until"],
        json=cohort_json(name="forever"),
        params={"retain_until": "99999-01-01"},
    ),
    Case(
        "retain_until at the end of year 9999, west of UTC",
        "POST",
        "/cohorts",
        422,
        ["query", "retain_until"],
        json=cohort_json(name="overflow"),
        params={"retain_until": "9999-12-31T23:59:59-14:00"},
    ),
    # GET /audit (admin)
    *(
        Case(f"audit {name}", "GET", "/audit", 422, ["query", loc], params=params, role=Role.admin)
        for name, loc, params in (
            ("since not a date", "since", {"since": "yesterday"}),
            ("until traversal", "until", {"until": TRAVERSAL}),
            ("until a Unix time", "until", {"until": "0.5"}),
            ("action injection", "action", {"action": "' OR 1=1 --"}),
            ("key_id not a UUID", "key_id", {"key_id": "1"}),
            ("object of 301 characters", "object", {"object": "/" * 301}),
            ("cursor not ours", "cursor", {"cursor": "-1"}),
            ("cursor huge", "cursor", {"cursor": "9" * 19}),
            ("limit 0", "limit", {"limit": "0"}),
            ("format xml", "format", {"format": "xml"}),
            ("unknown filter", "actor", {"actor": "admin"}),
        )
    ),
]


def webhook(url: Any = "https://sis.example.invalid/hook", **fields: Any) -> dict[str, Any]:
    return {"json": {"url": url, "events": ["job.failed"], **fields}}


WEBHOOK_CASES: list[Case] = [
    Case(
        "webhook to cloud metadata",
        "POST",
        "/webhooks",
        422,
        ["body", "url"],
        **webhook(METADATA_URL.replace("http:", "https:")),
    ),
    Case(
        "webhook over http",
        "POST",
        "/webhooks",
        422,
        ["body", "url"],
        **webhook("http://sis.example.invalid/hook"),
    ),
    Case(
        "webhook file URL",
        "POST",
        "/webhooks",
        422,
        ["body", "url"],
        **webhook("file:///etc/passwd"),
    ),
    Case(
        "webhook javascript URL",
        "POST",
        "/webhooks",
        422,
        ["body", "url"],
        **webhook("javascript:alert(1)"),
    ),
    Case(
        "webhook to loopback in decimal",
        "POST",
        "/webhooks",
        422,
        ["body", "url"],
        **webhook("https://2130706433/hook"),
    ),
    Case(
        "webhook to the unspecified IPv6 address",
        "POST",
        "/webhooks",
        422,
        ["body", "url"],
        **webhook("https://[::]/hook"),
    ),
    Case(
        "webhook URL with a NUL",
        "POST",
        "/webhooks",
        422,
        ["body", "url"],
        **webhook("https://sis.example.invalid/\x00hook"),
    ),
    Case(
        "webhook URL with CRLF (header injection)",
        "POST",
        "/webhooks",
        422,
        ["body", "url"],
        **webhook("https://sis.example.invalid/\r\nX-Evil: 1"),
    ),
    Case(
        "webhook URL of a megabyte",
        "POST",
        "/webhooks",
        422,
        ["body", "url"],
        **webhook("https://sis.example.invalid/" + MEGABYTE_NAME),
    ),
    Case(
        "webhook URL not a string",
        "POST",
        "/webhooks",
        422,
        ["body", "url"],
        **webhook(["https://sis.example.invalid/hook"]),
    ),
    Case(
        "webhook unknown event",
        "POST",
        "/webhooks",
        422,
        ["body", "events", 0],
        json={"url": "https://sis.example.invalid/hook", "events": ["job.*"]},
    ),
    Case(
        "webhook 10,000 events",
        "POST",
        "/webhooks",
        422,
        ["body", "events"],
        json={"url": "https://sis.example.invalid/hook", "events": ["job.failed"] * 10_000},
    ),
    Case(
        "webhook secret chosen by the caller",
        "POST",
        "/webhooks",
        422,
        ["body", "secret"],
        **webhook(secret="whsec_AAAA"),
    ),
    Case(
        "webhook id an SQL injection",
        "GET",
        "/webhooks/1%27%20OR%20%271%27=%271/deliveries",
        422,
        ["path", "webhook_id"],
    ),
    Case(
        "webhook unknown",
        "DELETE",
        "/webhooks/00000000-0000-4000-8000-000000000000",
        404,
        ["path", "webhook_id"],
    ),
    Case(
        "webhook events null",
        "POST",
        "/webhooks",
        422,
        ["body", "events"],
        json={"url": "https://sis.example.invalid/hook", "events": None},
    ),
]
CASES.extend(WEBHOOK_CASES)


def stored(client: httpx.Client) -> dict[str, int]:
    counts = {
        listing: client.get(listing).json()["count"]
        for listing in ("/cohorts", "/jobs", "/models", "/webhooks")
    }
    counts["versions"] = client.get("/models/concours/versions").json()["count"]
    counts["activations"] = client.get("/models/concours/activations").json()["count"]
    counts["evaluations"] = client.get("/models/concours/versions/1/evaluations").json()["count"]
    return counts


@pytest.fixture
def admin_with_data(tenant: Tenant) -> Iterator[tuple[httpx.Client, str]]:
    # Admin: the webhook cases need it, and it can do what a trainer can.
    with tenant.client(Role.admin) as admin:
        cohort = admin.post("/cohorts", json=cohort_json(name="base"))
        assert cohort.status_code == 201, cohort.text
        assert admin.post("/models/concours/versions", json=version_body()).status_code == 201
        yield admin, cohort.json()["id"]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_input_is_refused_naming_the_field_and_nothing_is_stored(
    admin_with_data: tuple[httpx.Client, str], tenant: Tenant, case: Case
) -> None:
    admin, cohort_id = admin_with_data
    # An admin can do what a trainer can; a case for a lesser role is sent with that role.
    client = admin if case.role in (Role.admin, Role.trainer) else tenant.client(case.role)
    before = stored(client)
    content = case.content.replace(b"{cohort_id}", cohort_id.encode()) if case.content else None
    body = case.json
    if isinstance(body, dict):
        body = {k: cohort_id if v == "{cohort_id}" else v for k, v in body.items()}
    response = client.request(
        case.method,
        case.path,
        json=body,
        content=content,
        headers=case.headers,
        params=case.params,
    )
    assert response.status_code == case.status, response.text[:2000]
    error = response.json()
    # The Open Inference Protocol's routes add its `error` (the same text as `detail`).
    if case.path.startswith("/v2/") and case.loc is not None:
        assert error.pop("error") == error["detail"]
    assert set(error) == {"detail", "code", "errors"}, error
    assert error["detail"]
    if case.loc is not None:
        assert error["errors"], error
        assert error["errors"][0]["loc"] == case.loc, error
    # errors[].type: the documented set for a 422, else the status's code.
    allowed = set(INPUT_ERROR_TYPES) if case.status == 422 else {error["code"]}
    assert {item["type"] for item in error["errors"]} <= allowed, error
    assert len(response.content) < 10_000, "the error echoes the input back"
    assert stored(client) == before


def test_the_catalogue_is_large_enough() -> None:
    assert len(CASES) >= 30
    assert len({c.name for c in CASES}) == len(CASES)


@pytest.fixture
def server_process(tmp_path: Path) -> Iterator[tuple[str, psutil.Process]]:
    """The service as it runs in production: its own process, a migrated SQLite file."""
    server = ServerProcess(
        f"sqlite:///{tmp_path / 'limits.db'}",
        tmp_path,
        env={
            "GRADECAST_BOOTSTRAP_ADMIN_KEY": BOOTSTRAP_KEY,
            "GRADECAST_WORKERS": "0",
            "GRADECAST_MAX_BODY_BYTES": str(BODY_LIMIT),
        },
    )
    upgrade_to_head(server.database_url)
    server.start()
    assert server.process is not None
    try:
        yield server.url, psutil.Process(server.process.pid)
    finally:
        server.stop()


BOOTSTRAP_KEY = "gc_hostile-input-test-bootstrap-key-0123456789abcdef"
# Lower than the default 64 MiB, so that "refused before it is read into memory" is
# measurable: a body under the limit is buffered whole by design.
BODY_LIMIT = 4 * 1024 * 1024
HUNDRED_MB = 100 * 1024 * 1024
MB = 1024 * 1024


class PeakRss:
    """Samples a process's resident memory every 10 ms while the block runs."""

    def __init__(self, process: psutil.Process) -> None:
        self.process = process
        self.peak = process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, self.process.memory_info().rss)

    def __enter__(self) -> "PeakRss":
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def hundred_megabytes() -> Iterator[bytes]:
    chunk = b"1;2;3\n" * (MB // 6)
    sent = 0
    while sent < HUNDRED_MB:
        yield chunk
        sent += len(chunk)


def post_until_refused(url: str, *, declared: bool) -> httpx.Response | None:
    """POST 100 MB of CSV, chunked or with its Content-Length declared. The server answers
    413 and closes while the client is still sending; None if the client saw a broken
    connection instead of that answer."""
    headers = {"Authorization": f"Bearer {BOOTSTRAP_KEY}", "Content-Type": "text/csv"}
    if declared:  # refused from the headers, before any byte is read
        headers["Content-Length"] = str(HUNDRED_MB)
    with httpx.Client(timeout=120) as client:
        request = client.build_request(
            "POST",
            f"{url}/cohorts",
            params={"name": "huge"},
            headers=headers,
            content=hundred_megabytes(),
        )
        try:
            return client.send(request)
        except (httpx.WriteError, httpx.RemoteProtocolError, httpx.ReadError):
            return None


@pytest.mark.parametrize("declared", [False, True], ids=["chunked", "content-length"])
def test_a_100_mb_body_is_refused_while_it_streams_in(
    server_process: tuple[str, psutil.Process], declared: bool
) -> None:
    url, process = server_process
    headers = {"Authorization": f"Bearer {BOOTSTRAP_KEY}"}
    before = process.memory_info().rss
    started = time.monotonic()
    with PeakRss(process) as rss:
        response = post_until_refused(url, declared=declared)
    elapsed = time.monotonic() - started
    assert response is not None, "the connection broke before the 413 was read"
    assert response.status_code == 413, response.text
    assert response.json()["code"] == "payload_too_large"
    assert response.json()["errors"][0]["loc"] == ["body"]
    assert rss.peak - before < 50 * MB, f"the server grew by {(rss.peak - before) / MB:.0f} MB"
    assert elapsed < 60
    # Still serving, and nothing was stored.
    cohorts = httpx.get(f"{url}/cohorts", headers=headers, timeout=10)
    assert cohorts.status_code == 200
    assert cohorts.json()["count"] == 0
