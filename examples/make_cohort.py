"""Generate the example cohort (synthetic, fixed seed): examples/cohort.csv and cohort.json.

The first four pupils are the ones shown in the course text; the others follow the
relation the course converges to, concours ≈ 0.48·maths + 0.53·info − 0.01·français,
plus noise. The CSV is written the way French spreadsheets export it: `;` separators,
decimal commas, CRLF line endings and an accented header.

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


if __name__ == "__main__":
    main()
