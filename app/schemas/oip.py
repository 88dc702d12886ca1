"""Open Inference Protocol v2 (KServe / Triton / MLServer) bodies, as that protocol defines
them; tensors are one input per feature of the version."""

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.schemas.common import StrictModel

# Parameters are protocol extensions (binary_data_size, binary_data, binary_data_output…).
Parameters = dict[str, str | int | float | bool]


class InferInput(StrictModel):
    name: str = Field(min_length=1, max_length=100, examples=["maths"])
    shape: list[int] = Field(
        min_length=1, max_length=2, description="[n] or [n, 1]: one value per pupil"
    )
    datatype: str = Field(max_length=10, description="FP64 (or FP32, INT64, INT32)")
    parameters: Parameters | None = None
    data: list[Any] | None = Field(
        default=None,
        description="The values, row-major; absent when sent as binary (binary_data_size)",
        examples=[[13, 12.5]],
    )


class RequestedOutput(StrictModel):
    name: Literal["prediction", "raw", "interval_low", "interval_high", "extrapolated"]
    parameters: Parameters | None = None


class InferRequest(StrictModel):
    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(default=None, max_length=200)
    parameters: Parameters | None = None
    inputs: list[InferInput] = Field(min_length=1, max_length=100)
    outputs: list[RequestedOutput] | None = Field(
        default=None, description="Default: every output of the version"
    )


class TensorMetadata(BaseModel):
    name: str
    datatype: str
    shape: list[int]


class ModelMetadata(BaseModel):
    name: str = Field(examples=["concours"])
    versions: list[str] = Field(examples=[["1", "2"]])
    platform: str = Field(examples=["gradecast_linear"])
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]


class OutputTensor(BaseModel):
    name: str
    datatype: str
    shape: list[int]
    parameters: Parameters | None = None
    data: list[float | bool] | None = None


class InferResponse(BaseModel):
    model_name: str
    model_version: str
    id: str | None = None
    outputs: list[OutputTensor]


class Live(BaseModel):
    live: bool


class Ready(BaseModel):
    ready: bool


class ModelReady(BaseModel):
    name: str
    ready: bool


class OipError(BaseModel):
    """The protocol's `error`, with the service's usual fields beside it."""

    error: str
    detail: str
    code: str
    errors: list[dict[str, Any]] = Field(default_factory=list)
