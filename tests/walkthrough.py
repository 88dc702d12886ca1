"""The README's walk-through, read from README.md itself and run with bash, so that the
README cannot drift from the service: tests/test_readme.py runs it against a live server,
scripts/compose_test.py against the compose stack.

Every ``sh`` block of the "## Walk-through" section (or of another section, by its title) is
run, in order, in one bash, from the repository's root, with ``API`` and ``KEY`` set,
``set -euo pipefail``, and curl failing on an HTTP error (the README's lines stay as a reader
pastes them).
"""

import os
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SECTION = "## Walk-through"
PRELUDE = 'set -euo pipefail\ncurl() { command curl --fail-with-body "$@"; }\n'


def walkthrough_script(readme: Path, section_title: str = SECTION) -> str:
    text = readme.read_text(encoding="utf-8")
    start = text.index(f"\n{section_title}\n")
    end = text.find("\n## ", start + 1)
    section = text[start : end if end != -1 else len(text)]
    blocks = re.findall(r"^```(?:sh|bash)\n(.*?)^```$", section, flags=re.MULTILINE | re.DOTALL)
    if not blocks:
        raise ValueError(f"no sh block in the {section_title!r} section of {readme}")
    return "\n".join(blocks)


def run_walkthrough(
    readme: Path, *, api: str, key: str, timeout: float = 300, section_title: str = SECTION
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", PRELUDE + walkthrough_script(readme, section_title)],
        cwd=ROOT,
        env={**os.environ, "API": api, "KEY": key},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
