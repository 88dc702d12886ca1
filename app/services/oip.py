"""The Open Inference Protocol v2 (KServe, Triton, MLServer) for a model version: its
metadata, and inference on columnar tensors, one input per feature, FP64.

Inputs arrive as JSON `data` or, with Triton's binary tensor data extension, as raw
little-endian bytes after the JSON header (``Inference-Header-Content-Length``). Outputs are
`prediction`, `raw`, `extrapolated` and, for a version with an interval, `interval_low` and
`interval_high`, rounded as /predict rounds them, in JSON or binary as the client asks.
Grades are checked as /predict checks them (a 422 naming the input and the pupil).
"""

from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from app.core.errors import InvalidInput, PayloadTooLarge
from app.schemas.oip import InferRequest
from app.services.batches import checked_values
from app.services.predict import VersionSnapshot, predict
from app.tables import load_json_object, parse_envelope

PLATFORM = "gradecast_linear"
# The tensor types an input may have; every one is read as float64.
_INPUT_TYPES = {"FP64": "<f8", "FP32": "<f4", "INT64": "<i8", "INT32": "<i4"}
_OUTPUT_TYPES = {
    "prediction": "FP64",
    "raw": "FP64",
    "interval_low": "FP64",
    "interval_high": "FP64",
    "extrapolated": "BOOL",
}


def output_names(snapshot: VersionSnapshot) -> list[str]:
    names = ["prediction", "raw", "extrapolated"]
    if snapshot.interval_design is not None or snapshot.residual_std is not None:
        names += ["interval_low", "interval_high"]
    return names


def model_metadata(snapshot: VersionSnapshot, versions: list[int]) -> dict[str, Any]:
    return {
        "name": snapshot.model,
        "versions": [str(v) for v in versions],
        "platform": PLATFORM,
        "inputs": [{"name": f, "datatype": "FP64", "shape": [-1]} for f in snapshot.features],
        "outputs": [
            {"name": name, "datatype": _OUTPUT_TYPES[name], "shape": [-1]}
            for name in output_names(snapshot)
        ],
    }


@dataclass(frozen=True)
class Inference:
    """A parsed request: the pupils' grades (n, p) in the version's feature order, and
    the outputs wanted, each with whether it is sent as binary."""

    id: str | None
    values: np.ndarray
    outputs: list[tuple[str, bool]]


def _json_part(body: bytes, header_length: int | None) -> tuple[dict[str, Any], bytes]:
    if header_length is None:
        return load_json_object(body), b""
    if not 0 < header_length <= len(body):
        raise InvalidInput(
            "Inference-Header-Content-Length is larger than the body",
            loc=["header", "inference-header-content-length"],
        )
    return load_json_object(body[:header_length]), body[header_length:]


def _flat(data: Any, loc: list[str | int]) -> list[Any]:
    """Row-major `data`, flat or nested one level ([[x], [y]] for a shape [n, 1])."""
    if not isinstance(data, list):
        raise InvalidInput("data must be an array", loc=loc)
    if data and isinstance(data[0], list):
        flat: list[Any] = []
        for row in data:
            if not isinstance(row, list):
                raise InvalidInput("data mixes arrays and numbers", loc=loc)
            flat.extend(row)
        return flat
    return data


def _tensor(spec: Any, binary: memoryview, offset: int, loc: list[str | int]) -> tuple[Any, int]:
    """One input as a float64 vector, and the offset of the next binary tensor."""
    dtype = _INPUT_TYPES.get(spec.datatype)
    if dtype is None:
        raise InvalidInput(
            f"input {spec.name!r} has datatype {spec.datatype!r}; send FP64 (or FP32, INT64, "
            "INT32)",
            loc=[*loc, "datatype"],
        )
    expected = int(np.prod(spec.shape)) if spec.shape else 0
    if len(spec.shape) not in (1, 2) or (len(spec.shape) == 2 and spec.shape[1] != 1):
        raise InvalidInput(
            f"input {spec.name!r} has shape {spec.shape}; one value per pupil: [n] or [n, 1]",
            loc=[*loc, "shape"],
        )
    size = (spec.parameters or {}).get("binary_data_size")
    if size is not None:
        if spec.data is not None:
            raise InvalidInput(f"input {spec.name!r} has both data and binary_data_size", loc=loc)
        if type(size) is not int or size < 0 or offset + size > len(binary):
            raise InvalidInput(
                f"input {spec.name!r}: binary_data_size is not within the body",
                loc=[*loc, "parameters", "binary_data_size"],
            )
        itemsize = np.dtype(dtype).itemsize
        if size != expected * itemsize:
            raise InvalidInput(
                f"input {spec.name!r}: {size} bytes for shape {spec.shape} of {spec.datatype}",
                loc=[*loc, "parameters", "binary_data_size"],
            )
        values = np.frombuffer(binary[offset : offset + size], dtype=dtype)
        return values.astype(np.float64), offset + size
    if spec.data is None:
        raise InvalidInput(f"input {spec.name!r} has no data", loc=[*loc, "data"])
    flat = _flat(spec.data, [*loc, "data"])
    if not set(map(type, flat)) <= {int, float}:
        raise InvalidInput(f"input {spec.name!r}: data must be JSON numbers", loc=[*loc, "data"])
    if len(flat) != expected:
        raise InvalidInput(
            f"input {spec.name!r}: {len(flat)} values for shape {spec.shape}", loc=[*loc, "data"]
        )
    try:
        return np.asarray(flat, dtype=np.float64), offset
    except OverflowError:
        raise InvalidInput(
            f"input {spec.name!r}: a value is not a finite number", loc=[*loc, "data"]
        ) from None


def parse_infer(
    body: bytes, header_length: int | None, snapshot: VersionSnapshot, max_rows: int
) -> Inference:
    """The request, checked against the version: exactly its features as inputs, one value
    per pupil each, grades within its range."""
    document, binary = _json_part(body, header_length)
    inputs = document.get("inputs")
    envelope = dict(document)
    if isinstance(inputs, list):
        # The schema sees each input without its data, which is read as a whole below.
        envelope["inputs"] = [
            {**item, "data": None} if isinstance(item, dict) else item for item in inputs
        ]
    spec = parse_envelope(InferRequest, envelope)
    assert isinstance(inputs, list)
    features = snapshot.features
    names = [item.name for item in spec.inputs]
    if sorted(names) != sorted(features) or len(set(names)) != len(names):
        missing = sorted(set(features) - set(names))
        what = (
            f"no input {missing[0]!r}"
            if missing
            else f"inputs must be the features {list(features)}, each once"
        )
        raise InvalidInput(
            f"{what}; the version's inputs are {list(features)}", loc=["body", "inputs"]
        )
    columns: dict[str, np.ndarray] = {}
    offset = 0
    view = memoryview(binary)
    for i, item in enumerate(spec.inputs):
        data = inputs[i].get("data") if isinstance(inputs[i], dict) else None
        columns[item.name], offset = _tensor(
            item.model_copy(update={"data": data}), view, offset, ["body", "inputs", i]
        )
    n = len(columns[features[0]])
    if n > max_rows:
        raise PayloadTooLarge(
            f"{n} pupils is over the limit of {max_rows} per request (GRADECAST_MAX_PREDICT_ROWS)",
            loc=["body", "inputs"],
        )
    if n == 0 or any(len(column) != n for column in columns.values()):
        raise InvalidInput(
            "every input needs one value per pupil, at least one", loc=["body", "inputs"]
        )
    values = np.column_stack([columns[f] for f in features])
    values = checked_values(snapshot, values, field="inputs")
    return Inference(spec.id, values, _outputs(spec, snapshot))


def _outputs(spec: InferRequest, snapshot: VersionSnapshot) -> list[tuple[str, bool]]:
    all_binary = bool((spec.parameters or {}).get("binary_data_output", False))
    available = output_names(snapshot)
    if not spec.outputs:
        return [(name, all_binary) for name in available]
    wanted: list[tuple[str, bool]] = []
    for i, output in enumerate(spec.outputs):
        if output.name not in available:
            raise InvalidInput(
                f"no output {output.name!r}; this version has {available}",
                loc=["body", "outputs", i, "name"],
            )
        binary = (output.parameters or {}).get("binary_data", all_binary)
        wanted.append((output.name, bool(binary)))
    return wanted


def infer(snapshot: VersionSnapshot, request: Inference) -> tuple[bytes, int | None]:
    """The response body, and the length of its JSON header when binary outputs follow it."""
    names = {name for name, _ in request.outputs}
    result = predict(snapshot, request.values, full=bool(names & {"interval_low", "interval_high"}))
    figures: dict[str, np.ndarray | None] = {
        "prediction": result.prediction,
        "raw": result.raw,
        "interval_low": result.interval_low,
        "interval_high": result.interval_high,
        "extrapolated": result.extrapolated,
    }
    n = request.values.shape[0]
    outputs = []
    blobs = []
    for name, binary in request.outputs:
        array = figures[name]
        assert array is not None
        output: dict[str, Any] = {"name": name, "datatype": _OUTPUT_TYPES[name], "shape": [n]}
        if binary:
            blob = array.astype("<f8" if array.dtype.kind == "f" else np.uint8).tobytes()
            output["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            output["data"] = array
        outputs.append(output)
    response: dict[str, Any] = {
        "model_name": snapshot.model,
        "model_version": str(snapshot.version),
        "outputs": outputs,
    }
    if request.id is not None:
        response["id"] = request.id
    header = orjson.dumps(response, option=orjson.OPT_SERIALIZE_NUMPY)
    if not blobs:
        return header, None
    return header + b"".join(blobs), len(header)
