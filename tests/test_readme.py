"""The README's walk-through, taken from README.md itself, run twice against a live server:
each run takes its ids from the answers, so a second run in the same organisation works, and
the figures the README states are the ones the service answers."""

import re
from pathlib import Path

from app.core.config import Settings
from app.db.models import Role
from tests.conftest import LiveServer, Tenant
from tests.walkthrough import ROOT, run_walkthrough, walkthrough_script

README = ROOT / "README.md"


def test_the_walkthrough_runs_twice_and_predicts_what_it_says(
    live_server: LiveServer, tenant: Tenant
) -> None:
    for run in (1, 2):
        result = run_walkthrough(README, api=live_server.url, key=tenant.keys[Role.admin])
        assert result.returncode == 0, (
            f"run {run}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
        # The README's own figures: the hand-set Θ, then the learned one.
        assert '"prediction":12.54' in result.stdout, result.stdout
        assert '"prediction":13.58' in result.stdout, result.stdout


def test_every_sh_block_of_the_section_is_run(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(
        "# x\n\n## Walk-through\n\n```sh\necho one\n```\n\ntext\n\n```bash\necho two\n```\n\n"
        "```json\n{}\n```\n\n## Next\n\n```sh\necho not-run\n```\n"
    )
    assert walkthrough_script(readme) == "echo one\n\necho two\n"


def test_the_configuration_table_lists_every_setting() -> None:
    """One table of every setting: a new one must be documented where operators look."""
    readme = README.read_text(encoding="utf-8")
    section = readme.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    first_cells = re.findall(r"^\| (`GRADECAST_[^|]+)\|", section, flags=re.MULTILINE)
    documented = {
        name for cell in first_cells for name in re.findall(r"GRADECAST_([A-Z0-9_]+)", cell)
    }
    settings = {name.upper() for name in Settings.model_fields}
    assert documented == settings, (
        f"undocumented: {sorted(settings - documented)}; gone: {sorted(documented - settings)}"
    )


def test_the_school_year_section_runs_and_the_gate_says_why(
    live_server: LiveServer, tenant: Tenant
) -> None:
    result = run_walkthrough(
        README,
        api=live_server.url,
        key=tenant.keys[Role.admin],
        section_title="## The school year",
    )
    assert result.returncode == 0, f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    # The figures the section states: version 1 (gd) evaluated on 2020-2021, then the
    # gate promoting the least-squares version 2 by its RMSE there, in the history too.
    assert '"rmse":0.374325979' in result.stdout, result.stdout[-3000:]
    reason = "rmse 0.373319 < 0.374326 of version 1"
    assert result.stdout.count(reason) == 2, result.stdout[-3000:]
    assert '"activated":true,"rule":"gate","compared_with_version":1' in result.stdout
    assert "# Fiche du modèle : annee, version 2" in result.stdout


def test_no_walkthrough_line_pipes_into_a_reader_that_stops_early() -> None:
    """`curl … | head -3` under pipefail fails with curl's exit 23 whenever head closes the
    pipe before curl has written everything: a race that CI lost once. `sed -n 1,3p` reads
    to the end and prints the same lines."""
    readme = README.read_text(encoding="utf-8")
    blocks = re.findall(r"^```(?:sh|bash)\n(.*?)^```$", readme, flags=re.MULTILINE | re.DOTALL)
    early = [
        line
        for block in blocks
        for line in block.splitlines()
        if re.search(r"\|\s*(head|sed\s+\d+q|grep\s+-m)\b", line)
    ]
    assert early == []
