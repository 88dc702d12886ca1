"""Big /predict bodies' pupils are read in C when they have the
usual shape (tables.typed_students), else as always. Whatever the body, both readings give
the same answer, byte for byte, or the same error; over HTTP, a big body's errors are those
of a small one."""

import json
from collections.abc import Callable
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.core.errors import ServiceError
from app.services.answers import answer_json
from app.services.batches import json_batch, parse_json_request, typed_json_batch
from app.services.predict import VersionSnapshot
from tests.test_predict import register
from tests.test_predict_columns import _IDS, SNAPSHOTS

MAX_ROWS = 30


def answer(
    snapshot: VersionSnapshot, body: bytes, *, typed: bool, full: bool
) -> bytes | tuple[Any, ...]:
    """The answer's bytes, or the error's class, sentence and errors, as /predict reads a
    body: typed (over 64 KB) or not."""
    try:
        request = parse_json_request(body, MAX_ROWS, typed=typed)
        batch = None
        if request.unread:
            batch = typed_json_batch(snapshot, request, MAX_ROWS)
            if batch is None:
                request = parse_json_request(body, MAX_ROWS)
        return answer_json(snapshot, request, full=full, batch=batch)[0]
    except ServiceError as error:
        return type(error), error.detail, error.errors


# What a cell may hold beyond a grade in range.
_ODD_CELLS: st.SearchStrategy[Any] = st.one_of(
    st.floats(-5, 25, allow_nan=False),
    st.integers(-3, 23),
    st.sampled_from([None, "Abs", "12,5", "15/20", True, 10**400, -(10**400), "x", [1], {}]),
)
_ODDITIES = ["none", "cell", "extra key", "missing key", "not an object", "bad id", "no id"]


@st.composite
def bodies(draw: st.DrawFn, snapshot: VersionSnapshot) -> bytes:
    """A body of pupils in the usual shape but for at most one thing, so that each way of
    leaving that shape is tried on its own."""
    n = draw(st.integers(0, MAX_ROWS + 3))
    with_ids = draw(st.booleans())
    grade = st.floats(0, 20, allow_nan=False) | st.integers(0, 20)
    pupils: list[Any] = []
    for _ in range(n):
        pupil: dict[str, Any] = {name: draw(grade) for name in snapshot.features}
        if with_ids:
            pupil["id"] = draw(_IDS | st.integers(-5, 10**6))
        pupils.append(pupil)
    oddity = draw(st.sampled_from(_ODDITIES))
    if pupils and oddity != "none":
        row = draw(st.integers(0, n - 1))
        pupil = pupils[row]
        if oddity == "cell":
            pupil[draw(st.sampled_from(snapshot.features))] = draw(_ODD_CELLS)
        elif oddity == "extra key":
            pupil[draw(st.sampled_from(["Français", "classe", "ID", "f99"]))] = 12
        elif oddity == "missing key":
            pupil.pop(draw(st.sampled_from([*snapshot.features, "id"])), None)
        elif oddity == "bad id":
            pupil["id"] = draw(st.sampled_from(["", " ", "a\nb", "x" * 65, True, 1.5, None]))
        elif oddity == "no id":
            pupil.pop("id", None)
        else:
            pupils[row] = draw(st.sampled_from([[1, 2], "n1", None, 3]))
    envelope: dict[str, Any] = {"model": "m", "students": pupils}
    if draw(st.booleans()):
        envelope["on_error"] = draw(st.sampled_from(["refuse", "skip", "ignore"]))
    if draw(st.booleans()):
        envelope["special_marks"] = draw(st.sampled_from(["refuse", "drop", "zero"]))
    if draw(st.integers(0, 9)) == 0:
        envelope[draw(st.sampled_from(["modele", "version", "columns"]))] = draw(
            st.sampled_from([1, "2", None, "m"])
        )
    return json.dumps(envelope).encode()  # orjson writes no integer beyond 64 bits


_COLUMN_ODDITIES = [
    "none",
    "cell",
    "extra column",
    "missing column",
    "short column",
    "empty column",
    "not a list",
    "bad id",
    "short ids",
    "ids null",
    "ids not a list",
]


@st.composite
def column_bodies(draw: st.DrawFn, snapshot: VersionSnapshot) -> bytes:
    """A columnar body in the usual shape but for at most one thing."""
    n = draw(st.integers(1, MAX_ROWS + 3))
    grade = st.floats(0, 20, allow_nan=False) | st.integers(0, 20)
    columns: dict[str, Any] = {name: [draw(grade) for _ in range(n)] for name in snapshot.features}
    envelope: dict[str, Any] = {"model": "m", "columns": columns}
    if draw(st.booleans()):
        envelope["ids"] = [draw(_IDS | st.integers(-5, 10**6)) for _ in range(n)]
    oddity = draw(st.sampled_from(_COLUMN_ODDITIES))
    name = draw(st.sampled_from(snapshot.features))
    if oddity == "cell":
        columns[name][draw(st.integers(0, n - 1))] = draw(_ODD_CELLS)
    elif oddity == "extra column":
        columns[draw(st.sampled_from(["Français", "classe", "id", "f99"]))] = [12] * n
    elif oddity == "missing column":
        columns.pop(name)
    elif oddity == "short column":
        columns[name] = columns[name][:-1]
    elif oddity == "empty column":
        columns[name] = []
    elif oddity == "not a list":
        columns[name] = draw(st.sampled_from([12, "12", None, {"a": 1}]))
    elif oddity == "bad id" and "ids" in envelope:
        envelope["ids"][draw(st.integers(0, n - 1))] = draw(
            st.sampled_from(["", " ", "a\nb", "x" * 65, True, 1.5, None])
        )
    elif oddity == "short ids" and "ids" in envelope:
        envelope["ids"] = envelope["ids"][:-1]
    elif oddity == "ids null":
        envelope["ids"] = None
    elif oddity == "ids not a list":
        envelope["ids"] = draw(st.sampled_from(["n1", 3, {}]))
    if draw(st.booleans()):
        envelope["on_error"] = draw(st.sampled_from(["refuse", "skip", "ignore"]))
    if draw(st.booleans()):
        envelope["special_marks"] = draw(st.sampled_from(["refuse", "drop", "zero"]))
    if draw(st.integers(0, 9)) == 0:
        envelope[draw(st.sampled_from(["modele", "version", "students"]))] = draw(
            st.sampled_from([1, "2", None, "m"])
        )
    return json.dumps(envelope).encode()


@pytest.mark.parametrize("form", [bodies, column_bodies], ids=["objects", "columns"])
@settings(max_examples=600, deadline=None)
@given(key=st.sampled_from(sorted(SNAPSHOTS)), data=st.data(), full=st.booleans())
def test_typed_and_untyped_readings_give_the_same_answer_or_error(
    form: Callable[[VersionSnapshot], st.SearchStrategy[bytes]],
    key: tuple[int, str],
    data: st.DataObject,
    full: bool,
) -> None:
    snapshot = SNAPSHOTS[key]
    body = data.draw(form(snapshot))
    assert answer(snapshot, body, typed=True, full=full) == answer(
        snapshot, body, typed=False, full=full
    )


_ENVELOPE_ODDITIES = [
    (b'{"model": "m"', b'{"model": "x", "model": "m"'),  # a key twice: the last counts
    (b'{"model": "m"', b'{"model": "m", "model": "x"'),
    (b'{"model"', b'{"mod\\u0065l"'),  # an escaped key
    (b'{"model": "m"', b'{"model": "\\u006d"'),  # an escaped value
    (b'{"model": "m"', b'{"model": "m", "version": 1e400'),
    (b'{"model": "m"', b'{"model": "m", "version": 99999999999999999999999'),
    (b'{"model": "m"', b' \n{ "model" :"m"'),
    (b'{"model": "m"', b'{"model": "m", "x": [}'),
]


@pytest.mark.parametrize("form", [bodies, column_bodies], ids=["objects", "columns"])
@settings(max_examples=500, deadline=None)
@given(key=st.sampled_from(sorted(SNAPSHOTS)), data=st.data(), full=st.booleans())
def test_a_broken_body_gets_the_same_answer_or_error_typed_or_not(
    form: Callable[[VersionSnapshot], st.SearchStrategy[bytes]],
    key: tuple[int, str],
    data: st.DataObject,
    full: bool,
) -> None:
    """The envelope is read in C, its structure only; each member by its own reader. A body
    cut, with a byte changed or added (most often at a bracket, a quote, a colon or a comma),
    or with an odd envelope, is answered or refused as the general reader does."""
    snapshot = SNAPSHOTS[key]
    body = data.draw(form(snapshot))
    if data.draw(st.booleans()):
        old, new = data.draw(st.sampled_from(_ENVELOPE_ODDITIES))
        body = body.replace(old, new, 1)
    else:
        structure = [i for i, byte in enumerate(body) if byte in b'{}[]":,']
        at = data.draw(st.sampled_from(structure) | st.integers(0, len(body)))
        byte = bytes([data.draw(st.sampled_from(b'{}[]":, \\') | st.integers(0, 255))])
        body = data.draw(
            st.sampled_from(
                [body[:at], body[:at] + byte + body[at + 1 :], body[:at] + byte + body[at:]]
            )
        )
    assert answer(snapshot, body, typed=True, full=full) == answer(
        snapshot, body, typed=False, full=full
    )


def test_the_usual_shape_is_read_typed() -> None:
    """Not only the fallback: the usual body is read in C, with ids and without."""
    snapshot = SNAPSHOTS[(3, "ols")]
    for ids in (True, False):
        pupils = [
            {"f0": 12.5, "f1": 14, "f2": 9.25, **({"id": f" n{i} "} if ids else {})}
            for i in range(5)
        ]
        request = parse_json_request(
            orjson.dumps({"model": "m", "students": pupils}), MAX_ROWS, typed=True
        )
        assert request.raw_students is not None
        assert request.students == []
        batch = typed_json_batch(snapshot, request, MAX_ROWS)
        assert batch is not None
        assert batch.ids == ([f"n{i}" for i in range(5)] if ids else None)
        assert batch.values.tolist() == [[12.5, 14.0, 9.25]] * 5
        assert (
            batch.values.tolist()
            == json_batch(
                snapshot, parse_json_request(orjson.dumps({"model": "m", "students": pupils}), 30)
            ).values.tolist()
        )


def test_the_usual_columns_are_read_typed() -> None:
    """Not only the fallback: columns in the usual shape are read in C, with ids and without,
    as the general reader reads them."""
    snapshot = SNAPSHOTS[(3, "ols")]
    for ids in (True, False):
        body = {
            "model": "m",
            "columns": {"f1": [14, 9], "f0": [12.5, -0], "f2": [9.25, 1e1]},
            **({"ids": [" n1", 7]} if ids else {}),
        }
        request = parse_json_request(orjson.dumps(body), MAX_ROWS, typed=True)
        assert request.raw_columns is not None
        batch = typed_json_batch(snapshot, request, MAX_ROWS)
        assert batch is not None
        assert batch.ids == (["n1", "7"] if ids else None)
        assert batch.values.tolist() == [[12.5, 14.0, 9.25], [0.0, 9.0, 10.0]]
        general = json_batch(snapshot, parse_json_request(orjson.dumps(body), MAX_ROWS))
        assert general.values.tobytes() == batch.values.tobytes()
        assert general.ids == batch.ids


def _big(students: list[dict[str, Any]], model: str = "concours") -> dict[str, Any]:
    return {"model": model, "students": students}


def test_a_big_body_is_answered_and_refused_as_a_small_one(
    admin: httpx.Client,
) -> None:
    """Over 64 KB (3,000 pupils) a body is read typed; its answers and errors are those of
    the same pupils in a small body: the error names the pupil and the column."""
    register(admin)
    pupils = [{"id": f"p{i}", "maths": 13, "info": 14, "francais": 11} for i in range(3000)]
    assert len(orjson.dumps(_big(pupils))) > 64 * 1024
    ok = admin.post("/predict", json=_big(pupils))
    assert ok.status_code == 200, ok.text
    answers = ok.json()["predictions"]
    assert len(answers) == 3000
    assert answers[2999]["id"] == "p2999"
    assert answers[0]["prediction"] == 12.54
    small = admin.post("/predict", json=_big(pupils[:1])).json()["predictions"]
    assert answers[0] == small[0]

    for change, loc in (
        ({"maths": "Abs"}, ["body", "students", 2500, "maths"]),
        ({"Français": 11}, ["body", "students", 2500, "Français"]),
        ({"id": ""}, ["body", "students", 2500, "id"]),
    ):
        bad = [dict(p) for p in pupils]
        bad[2500].update(change)
        refused = admin.post("/predict", json=_big(bad))
        assert refused.status_code == 422, refused.text
        assert refused.json()["errors"][0]["loc"] == loc
        alone = admin.post("/predict", json=_big(bad[2500:2501]))
        assert refused.json()["errors"][0]["loc"][3] == alone.json()["errors"][0]["loc"][3]

    # An unknown model and too many pupils: the body's 413 comes first, as for a body
    # read as always.
    response = admin.post("/predict", json=_big(pupils * 4, model="nope"))
    assert response.status_code == 413, response.text
    missing = admin.post("/predict", json=_big(pupils, model="nope"))
    assert missing.status_code == 404


@pytest.mark.parametrize("n", [10_001])
def test_too_many_pupils_in_a_big_body(admin: httpx.Client, n: int) -> None:
    register(admin)
    pupils = [{"maths": 13, "info": 14, "francais": 11}] * n
    response = admin.post("/predict", json=_big(pupils))
    assert response.status_code == 413, response.text
    assert response.json()["errors"][0]["loc"] == ["body", "students"]
