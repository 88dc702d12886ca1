"""glibc's malloc told to give big buffers back (app/core/memory.py), in fresh processes: the
pattern of an upload (a big body freed, then arrays a little smaller) leaves the memory
resident with glibc's defaults, and gives it back with the setting."""

import json
import os
import subprocess
import sys

import pytest

from app.core.memory import give_back_big_buffers

PATTERN = """
import json, os, sys
from app.core.memory import give_back_big_buffers
tuned = give_back_big_buffers() if sys.argv[1] == "tuned" else False
page = os.sysconf("SC_PAGE_SIZE")
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * page / 2**20
base = rss()
body = bytearray(31 * 2**20)  # an upload's body, mapped on its own, then freed
del body
arrays = [bytearray(2 * 2**20) for _ in range(30)]  # 60 MB of 2-MB arrays
pinned = bytearray(64 * 1024)  # something small, kept, on top of the heap
del arrays
print(json.dumps({"tuned": tuned, "kept_mb": rss() - base}))
"""


def kept_after_the_pattern(mode: str) -> dict[str, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "GLIBC_"))}
    done = subprocess.run(
        [sys.executable, "-c", PATTERN, mode], capture_output=True, text=True, env=env, check=True
    )
    result: dict[str, float] = json.loads(done.stdout)
    return result


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_big_buffers_are_given_back_once_freed() -> None:
    default = kept_after_the_pattern("default")
    tuned = kept_after_the_pattern("tuned")
    assert tuned["tuned"] is True
    # With glibc's defaults, the 2-MB arrays came from the heap and stayed resident.
    assert default["kept_mb"] > 40, default
    assert tuned["kept_mb"] < 5, tuned


def test_an_operators_own_malloc_setting_stands(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "131072")
    assert give_back_big_buffers() is False
