"""Pupils' ids: the one rule of what an id may be, and duplicates."""

import re
from collections.abc import Sequence

MAX_ID_LENGTH = 64
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def id_problem(pupil_id: str) -> str | None:
    """What is wrong with an id (already stripped), or None when it is a valid one."""
    if not pupil_id:
        return "the id is empty; every pupil needs one"
    if len(pupil_id) > MAX_ID_LENGTH:
        return f"the id is {len(pupil_id)} characters long, at most {MAX_ID_LENGTH}"
    if _CONTROL_CHARS.search(pupil_id):
        return "the id contains a control character or a line break"
    return None


def first_bad_id(ids: Sequence[str]) -> tuple[int, str] | None:
    """Index of the first invalid id, and what is wrong; one pass over them all when none is."""
    longest = max(map(len, ids), default=0)
    joined = "".join(ids)
    has_control = not joined.isprintable() and _CONTROL_CHARS.search(joined) is not None
    if "" not in ids and longest <= MAX_ID_LENGTH and not has_control:
        return None
    for index, pupil_id in enumerate(ids):
        problem = id_problem(pupil_id)
        if problem is not None:
            return index, problem
    return None


def find_duplicate(ids: Sequence[str]) -> tuple[int, int, str] | None:
    """The 1-based rows of the first id seen twice, and that id; None when all differ."""
    first_rows: dict[str, int] = {}
    for row, pupil_id in enumerate(ids, start=1):
        first_row = first_rows.setdefault(pupil_id, row)
        if first_row != row:
            return first_row, row, pupil_id
    return None
