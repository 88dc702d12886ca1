"""Pupils in JSON, read and written in C (_pupiljson.c says how)."""

from collections.abc import Callable
from typing import Any

def read_pupils(
    body: Any, features: tuple[str, ...], id_name: str, separator: bytes, /
) -> tuple[int, bytearray, str | None, bytes | None] | None: ...
def read_column(body: Any, /) -> bytearray | None: ...
def read_ids(body: Any, separator: bytes, /) -> tuple[str, bytes] | None: ...
def read_object(body: Any, /) -> dict[str, tuple[int, int]] | None: ...
def write_pupils(
    head: bytes,
    template: tuple[bytes, ...],
    figures: tuple[object, ...],
    n: int,
    replaced: dict[int, bytes],
    tail: bytes,
    dumps: Callable[[Any], bytes],
    /,
) -> bytes: ...
