"""Column names: the API name of a header, and the one check of names given as API names."""

import difflib
import re
import unicodedata
from collections.abc import Iterable, Sequence

from app.core.errors import InvalidInput
from app.tables.errors import TableError

API_NAME_PATTERN = r"^[a-z0-9]+(_[a-z0-9]+)*$"
# The id column is never a grade column, so "id" is not an API name of one.
ID_NAME = "id"

# NFKD leaves these ligatures whole; French names use the first two.
_LIGATURES = str.maketrans({"œ": "oe", "Œ": "OE", "æ": "ae", "Æ": "AE", "ß": "ss"})
_NOT_KEY_CHARS = re.compile(r"[^a-z0-9]+")


def feature_key(header: str) -> str:
    """The API name of a column: "Français" → "francais", "Note Maths" → "note_maths"."""
    decomposed = unicodedata.normalize("NFKD", header.translate(_LIGATURES))
    ascii_text = decomposed.encode("ascii", "ignore").decode("ascii").lower()
    key = _NOT_KEY_CHARS.sub("_", ascii_text).strip("_")
    if not key:
        raise TableError(
            f"column name {header!r} needs at least one letter or digit", column=header
        )
    return key


def likely_name(name: str, candidates: Iterable[str]) -> str | None:
    """The name among ``candidates`` that an unknown ``name`` most likely meant: its API name
    ("Français" → "francais"), else the closest spelling ("modle" → "model"), else None."""
    names = list(candidates)
    try:
        key = feature_key(name)
    except TableError:
        return None
    if key in names:
        return key
    close = difflib.get_close_matches(key, names, n=1, cutoff=0.6)
    return close[0] if close else None


def unknown_name_message(
    what: str, name: str, expected: Iterable[str], likely: Iterable[str] | None = None
) -> str:
    """One wording for every unknown field, column or parameter, with the name it most
    likely meant among ``likely`` (default: all the ``expected`` names)."""
    names = sorted(expected)
    guess = likely_name(name, names if likely is None else likely)
    hint = f"; did you mean {guess!r}?" if guess else ""
    return f"unknown {what} {name!r}{hint} (expected: {', '.join(names) or 'none'})"


def check_api_names(features: Sequence[str], target: str, *, loc: list[str | int]) -> None:
    """Features and target as written in a JSON body: API names, all different, the target
    not a feature; else a 422 at ``loc + ["features", i]`` or ``loc + ["target"]``."""
    for i, name in enumerate([*features, target]):
        where = [*loc, "features", i] if i < len(features) else [*loc, "target"]
        try:
            key = feature_key(name)
        except TableError:  # no letter or digit at all: nothing to suggest
            key = ""
        if name != key or name == ID_NAME:
            suggestion = (
                f"must be written {key!r}" if key and key != ID_NAME else "is not an API name"
            )
            raise InvalidInput(
                f"column name {name!r} {suggestion} (lowercase letters, digits and '_', "
                f"matching {API_NAME_PATTERN}; not {ID_NAME!r})",
                loc=where,
            )
    first_seen: dict[str, int] = {}
    for i, name in enumerate(features):
        if name in first_seen:
            raise InvalidInput(f"feature {name!r} is listed twice", loc=[*loc, "features", i])
        first_seen[name] = i
    if target in first_seen:
        raise InvalidInput(f"the target {target!r} cannot also be a feature", loc=[*loc, "target"])
