"""Generate the next school year for the README's "The school year": 2020-2021's 120 pupils
(synthetic, fixed seed, the same relation as examples/cohort.csv), as their grades before
the concours (examples/promo-2020-2021-notes.csv, to predict) and with their concours results
and their class (examples/promo-2020-2021.csv, to evaluate on). Written the French way.

    python examples/make_school_year.py
"""

from pathlib import Path

from make_cohort import _fr, make

HERE = Path(__file__).parent
CLASSES = ("3A", "3B", "3C", "3D")


def main() -> None:
    table = make(124, seed=2021)[1][4:]  # without the course's four pupils
    ids = [f"f{i + 1}" for i in range(len(table))]
    notes = ["id;Maths;Info;Français"]
    results = ["id;Classe;Maths;Info;Français;Concours"]
    for i, (ident, row) in enumerate(zip(ids, table, strict=True)):
        notes.append(";".join([ident, *(_fr(v) for v in row[:3])]))
        results.append(";".join([ident, CLASSES[i % 4], *(_fr(v) for v in row)]))
    for name, lines in (("promo-2020-2021-notes.csv", notes), ("promo-2020-2021.csv", results)):
        (HERE / name).write_bytes(("\r\n".join(lines) + "\r\n").encode("utf-8"))


if __name__ == "__main__":
    main()
