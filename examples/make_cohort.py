"""Generate the example cohorts (synthetic, fixed seed): examples/cohort.csv and cohort.json,
and two school-software exports, examples/pronote-export.csv and classe-2020-2021.csv.

The first four pupils are the ones shown in the course text; the others follow the
relation the course converges to, concours ≈ 0.48·maths + 0.53·info − 0.01·français,
plus noise. The CSV is written the way French spreadsheets export it: `;` separators,
decimal commas, CRLF line endings and an accented header.

The exports look like Pronote's: `Nom`, `Prénom`, `INE`, `Classe`, the subjects and the
concours, with a few `Abs`, `Disp` and `Abs*` marks and a mark written `15/20`. Every name
and INE is fictional (FICTIF-…, EX…).

    python examples/make_cohort.py [N]
"""

import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
COURSE_PUPILS = [(12, 15, 9, 14), (5, 9, 12, 7), (13, 12, 13, 12), (10, 12, 15, 11)]


def make(n: int = 200, seed: int = 2020) -> tuple[list[str], np.ndarray]:
    rng = np.random.default_rng(seed)
    grades = np.clip(np.round(rng.normal(11, 3.2, size=(n, 3)) * 2) / 2, 0, 20)
    concours = 0.48 * grades[:, 0] + 0.53 * grades[:, 1] - 0.01 * grades[:, 2]
    concours = np.clip(np.round((concours + rng.normal(0, 0.35, size=n)) * 2) / 2, 0, 20)
    table = np.column_stack([grades, concours])
    table[: len(COURSE_PUPILS)] = COURSE_PUPILS
    ids = [f"e{i + 1}" for i in range(n)]
    return ids, table


def _fr(value: float) -> str:
    return f"{value:g}".replace(".", ",")


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    ids, table = make(n)
    lines = ["id;Maths;Info;Français;Concours"]
    lines += [
        ";".join([ident, *(_fr(v) for v in row)]) for ident, row in zip(ids, table, strict=True)
    ]
    (HERE / "cohort.csv").write_bytes(("\r\n".join(lines) + "\r\n").encode("utf-8"))
    document = {
        "name": "promo-2019-2020",
        "features": ["maths", "info", "francais"],
        "target": "concours",
        "grade_range": [0, 20],
        "students": [
            {"id": ident, "maths": m, "info": i, "francais": f, "concours": c}
            for ident, (m, i, f, c) in zip(ids, table.tolist(), strict=True)
        ],
    }
    (HERE / "cohort.json").write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")


FIRST_NAMES = ["Alpha", "Bêta", "Gamma", "Delta", "Epsilon", "Zêta", "Êta", "Thêta", "Iota"]


def _export_rows(n: int, seed: int, with_target: bool) -> list[list[str]]:
    """Pupils of two classes as a school's software exports them: names, INE, class, marks."""
    _, table = make(n, seed)
    rows = []
    for i, values in enumerate(table.tolist()):
        marks = [_fr(v) for v in (values if with_target else values[:3])]
        rows.append(
            [
                f"FICTIF-{i + 1:02d}",
                FIRST_NAMES[i % len(FIRST_NAMES)],
                f"EX{seed % 1000:03d}{i + 1:06d}",
                "3A" if i % 2 == 0 else "3B",
                *marks,
            ]
        )
    return rows


def _write(path: Path, header: list[str], rows: list[list[str]]) -> None:
    lines = [";".join(header), *(";".join(row) for row in rows)]
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode("utf-8"))


def exports() -> None:
    subjects = ["Maths", "Info", "Français"]
    # Last year's cohort, concours results in: 40 pupils, four of them with special marks.
    rows = _export_rows(40, 2019, with_target=True)
    rows[3][4] = "Abs"  # absent at the maths test: left out with special_marks=drop
    rows[8][6] = "Disp"  # exempted from French: left out too
    rows[12][5] = "Abs*"  # unjustified absence: counts as 0
    rows[17][4] = "15/20"  # a mark written on its scale: 15
    rows[21][7] = "N.Not"  # no concours grade: left out
    _write(HERE / "pronote-export.csv", ["Nom", "Prénom", "INE", "Classe", *subjects, "Concours"], rows)
    # This year's class list, to predict: 30 pupils, one absent in maths.
    rows = _export_rows(30, 2020, with_target=False)
    rows[6][4] = "Abs"
    _write(HERE / "classe-2020-2021.csv", ["Nom", "Prénom", "INE", "Classe", *subjects], rows)


if __name__ == "__main__":
    main()
    exports()
