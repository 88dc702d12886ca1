"""Pupils' ids: the one rule of what an id may be, and duplicates."""

import base64
import hashlib
import hmac
import re
from collections.abc import Sequence

MAX_ID_LENGTH = 64
MAX_GROUP_LENGTH = 50
_CONTROL_CLASS = r"\x00-\x1f\x7f-\x9f\u2028\u2029"
_CONTROL_CHARS = re.compile(f"[{_CONTROL_CLASS}]")
# The same rule, for a schema: an id with no control character or line break.
ID_PATTERN = f"^[^{_CONTROL_CLASS}]*$"


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
    if len(set(ids)) == len(ids):
        return None  # one pass in C for the usual case; the rows only when there is one
    first_rows: dict[str, int] = {}
    for row, pupil_id in enumerate(ids, start=1):
        first_row = first_rows.setdefault(pupil_id, row)
        if first_row != row:
            return first_row, row, pupil_id
    return None


def group_label_problem(label: str) -> str | None:
    """What is wrong with a group label (a class, a division; stripped), or None."""
    if len(label) > MAX_GROUP_LENGTH:
        return f"the group label is {len(label)} characters long, at most {MAX_GROUP_LENGTH}"
    if _CONTROL_CHARS.search(label):
        return "the group label contains a control character or a line break"
    return None


PSEUDONYM_PREFIX = "p_"


def pseudonymise(ids: Sequence[str], pepper: bytes, organisation: str) -> list[str]:
    """Each id as a keyed hash: HMAC-SHA256 under the server's pepper, of the organisation
    and the id, truncated to 120 bits and written in base 32 behind `p_`.

    The same id (an INE) gives the same pseudonym in every cohort of an organisation, and
    another in another organisation; without the pepper, a leaked database does not give
    the ids back (a 120-bit keyed hash cannot be reversed by trying every INE).
    """
    prefix = organisation.encode() + b"\0"
    return [
        PSEUDONYM_PREFIX
        + base64.b32encode(
            hmac.new(pepper, prefix + pupil_id.encode(), hashlib.sha256).digest()[:15]
        )
        .decode("ascii")
        .lower()
        for pupil_id in ids
    ]
