"""Pupils' ids: the one rule of what an id may be, and duplicates."""

import hashlib
import hmac
import re
from bisect import bisect_right
from collections.abc import Iterable, Iterator, Sequence
from typing import overload

import numpy as np

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


def first_bad_id(ids: Sequence[str], *, joined: str | None = None) -> tuple[int, str] | None:
    """Index of the first invalid id, and what is wrong; one pass over them all when none is.
    ``joined``: the ids joined, when the caller has them so."""
    longest = max(map(len, ids), default=0)
    if joined is None:
        joined = "".join(ids)
    has_control = not joined.isprintable() and _CONTROL_CHARS.search(joined) is not None
    if "" not in ids and longest <= MAX_ID_LENGTH and not has_control:
        return None
    for index, pupil_id in enumerate(ids):
        problem = id_problem(pupil_id)
        if problem is not None:
            return index, problem
    return None


# Ids and group labels hold no control character (the rule above), so a line break can
# separate them: in `PackedIds` and in the stored blocks (app/db/students.py).
SEPARATOR = "\n"


def packed_ids_valid(ids: "PackedIds") -> bool:
    """Whether every id is valid (id_problem) and as stripped, in a few calls over the text:
    the usual case. False says nothing more: the ids are then checked one by one."""
    lengths = np.diff(ids.starts) - 1
    if lengths.size == 0:
        return True
    if int(lengths.min()) < 1 or int(lengths.max()) > MAX_ID_LENGTH:
        return False
    # Printable: no control character, no line break, no space but " " (str.isprintable).
    inner = ids.text.replace(SEPARATOR, "")
    return inner.isprintable() and " " not in inner


class PackedIds(Sequence[str]):
    """Pupils' ids as a few long texts, each SEPARATOR-joined, and where each id starts: a
    million ids are about 14 MB and a 4-MB array, not a million str objects (about 70 MB).

    Read like a list of str. The texts are the parts the ids were packed in (an upload's
    pieces), never joined into one: that would hold them twice. Positions count as if they
    were, a SEPARATOR between two parts; a slice is packed too, and `text` is what a
    stored block holds."""

    __slots__ = ("_offsets", "_starts", "_texts")

    def __init__(self, texts: list[str], starts: np.ndarray, offsets: list[int]) -> None:
        self._texts = texts
        self._offsets = offsets  # where each text begins
        # starts[i] is where id i begins; one more entry, one past the end of the last id.
        self._starts = starts

    @classmethod
    def join(cls, parts: Iterable[Sequence[str]]) -> "PackedIds":
        """Ids given in parts (say, a piece of an upload at a time), packed as they come."""
        packed = [part if isinstance(part, PackedIds) else cls._pack(part) for part in parts]
        packed = [part for part in packed if len(part)]
        count = sum(map(len, packed))
        length = sum(int(part._starts[-1]) for part in packed)
        starts = np.empty(count + 1, dtype=np.int32 if length < 2**31 else np.int64)
        starts[0] = at = 0
        base = 0
        texts: list[str] = []
        offsets: list[int] = []
        for part in packed:
            # A part's positions, moved to where its text begins in the whole.
            np.add(part._starts[1:], base, out=starts[at + 1 : at + 1 + len(part)])
            texts.extend(part._texts)
            offsets.extend(offset + base for offset in part._offsets)
            at += len(part)
            base = int(starts[at])
        return cls(texts, starts, offsets)

    @classmethod
    def _pack(cls, ids: Sequence[str]) -> "PackedIds":
        starts = np.zeros(len(ids) + 1, dtype=np.int64)
        np.cumsum(np.fromiter(map(len, ids), dtype=np.int64, count=len(ids)) + 1, out=starts[1:])
        return cls([SEPARATOR.join(ids)], starts, [0])

    @property
    def starts(self) -> np.ndarray:
        """Where each id begins in `text`, and one more entry, one past the end of the last
        id (for a slice of one part, no copy)."""
        return self._starts

    @property
    def text(self) -> str:
        """The ids SEPARATOR-joined (for a slice of one part, no copy)."""
        return self._texts[0] if len(self._texts) == 1 else SEPARATOR.join(self._texts)

    def _between(self, begin: int, end: int) -> str:
        """The text from position `begin` to `end`, across parts as if they were joined."""
        first = bisect_right(self._offsets, begin) - 1
        pieces = []
        for text, offset in zip(self._texts[first:], self._offsets[first:], strict=True):
            if offset > end:
                break
            pieces.append(text[max(begin - offset, 0) : end - offset])
        return SEPARATOR.join(pieces)

    def __len__(self) -> int:
        return len(self._starts) - 1

    @overload
    def __getitem__(self, index: int) -> str: ...
    @overload
    def __getitem__(self, index: slice) -> "PackedIds": ...
    def __getitem__(self, index: int | slice) -> "str | PackedIds":
        if isinstance(index, slice):
            first, last, step = index.indices(len(self))
            if step != 1:
                return PackedIds.join([list(self)[index]])
            if last <= first:
                return PackedIds([], np.zeros(1, dtype=np.int64), [])
            begin = int(self._starts[first])
            text = self._between(begin, int(self._starts[last]) - 1)
            return PackedIds([text], self._starts[first : last + 1] - begin, [0])
        position = range(len(self))[index]
        return self._between(int(self._starts[position]), int(self._starts[position + 1]) - 1)

    def __iter__(self) -> Iterator[str]:
        # The str objects of a block at a time: iterating a million costs a block's memory.
        for first in range(0, len(self), _BLOCK):
            yield from self[first : first + _BLOCK].text.split(SEPARATOR)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Sequence) and not isinstance(other, str):
            return len(self) == len(other) and list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # a sequence, compared by value

    def __repr__(self) -> str:
        return f"PackedIds({len(self)} ids)"


_BLOCK = 65_536


def find_duplicate(ids: Sequence[str]) -> tuple[int, int, str] | None:
    """The 1-based rows of the first id seen twice, and that id; None when all differ.

    The ids' hashes are sorted (8 bytes an id, not a set of them): only ids whose hash is
    seen twice are then compared, in upload order, so the answer is the exact one."""
    hashes = np.fromiter(map(hash, ids), dtype=np.int64, count=len(ids))
    hashes.sort()  # in place: 8 MB for a million, not 16
    repeated = hashes[1:][hashes[1:] == hashes[:-1]]
    if repeated.size == 0:
        return None
    hashes = np.fromiter(map(hash, ids), dtype=np.int64, count=len(ids))
    first_rows: dict[str, int] = {}
    for index in np.flatnonzero(np.isin(hashes, repeated)).tolist():
        pupil_id = ids[index]
        first_row = first_rows.setdefault(pupil_id, index + 1)
        if first_row != index + 1:
            return first_row, index + 1, pupil_id
    return None


def group_label_problem(label: str) -> str | None:
    """What is wrong with a group label (a class, a division; stripped), or None."""
    if len(label) > MAX_GROUP_LENGTH:
        return f"the group label is {len(label)} characters long, at most {MAX_GROUP_LENGTH}"
    if _CONTROL_CHARS.search(label):
        return "the group label contains a control character or a line break"
    return None


PSEUDONYM_PREFIX = "p_"


_PSEUDONYM_BYTES = 15  # 120 bits: 24 base-32 characters, no padding
_BASE32 = np.frombuffer(b"abcdefghijklmnopqrstuvwxyz234567", dtype=np.uint8)  # RFC 4648, lower


def pseudonymise(ids: Sequence[str], pepper: bytes, organisation: str) -> PackedIds:
    """Each id as a keyed hash: HMAC-SHA256 under the server's pepper, of the organisation
    and the id, truncated to 120 bits and written in base 32 (RFC 4648, lower case) behind
    `p_`.

    The same id (an INE) gives the same pseudonym in every cohort of an organisation, and
    another in another organisation; without the pepper, a leaked database does not give
    the ids back (a 120-bit keyed hash cannot be reversed by trying every INE).

    The HMAC keyed with the pepper and the organisation is computed once and copied for
    each id; the base 32 is written by numpy for a block of ids at a time (base64's
    b32encode is a Python loop: 1.6 s for a million).
    """
    keyed = hmac.new(pepper, organisation.encode() + b"\0", hashlib.sha256)
    return PackedIds.join(
        _pseudonyms(keyed, ids[first : first + _BLOCK]) for first in range(0, len(ids), _BLOCK)
    )


def _pseudonyms(keyed: "hmac.HMAC", ids: Sequence[str]) -> PackedIds:
    digests = bytearray()
    for pupil_id in ids:
        mac = keyed.copy()
        mac.update(pupil_id.encode())
        digests += mac.digest()[:_PSEUDONYM_BYTES]
    # Five bytes are eight 5-bit symbols, most significant first.
    groups = np.frombuffer(bytes(digests), dtype=np.uint8).reshape(-1, 5).astype(np.uint64)
    forty = (
        (groups[:, 0] << 32)
        | (groups[:, 1] << 24)
        | (groups[:, 2] << 16)
        | (groups[:, 3] << 8)
        | groups[:, 4]
    )
    shifts = np.arange(35, -1, -5, dtype=np.uint64)
    symbols = _BASE32[(forty[:, None] >> shifts) & np.uint64(31)].reshape(len(ids), 24)
    prefix = np.frombuffer(PSEUDONYM_PREFIX.encode("ascii"), dtype=np.uint8)
    lines = np.empty((len(ids), len(prefix) + 25), dtype=np.uint8)
    lines[:, : len(prefix)] = prefix
    lines[:, len(prefix) : -1] = symbols
    lines[:, -1] = ord(SEPARATOR)
    width = lines.shape[1]
    starts = np.arange(len(ids) + 1, dtype=np.int64) * width
    return PackedIds([lines.tobytes()[:-1].decode("ascii")], starts, [0])
