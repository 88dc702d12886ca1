"""The C reader and writer of pupils in JSON (app/tables/_pupiljson.c), against independent
references: the standard library's json (correctly rounded numbers, exact integers) for what
is read, orjson for what is written. Whatever the reader accepts is exactly what json reads;
whatever the writer writes is exactly what orjson writes."""

import json
import math
import os
import shutil
import struct
import subprocess
import sys
import sysconfig
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from app.tables._pupiljson import read_column, read_ids, read_object, read_pupils, write_pupils
from app.tables.ids import SEPARATOR, PackedIds, first_bad_id, packed_ids_valid
from app.tables.json import typed_students
from app.tables.names import ID_NAME

FEATURES = ("maths", "info", "français")


def read(body: bytes, features: tuple[str, ...] = FEATURES) -> Any:
    return read_pupils(body, features, ID_NAME, SEPARATOR.encode())


def reference(body: bytes, features: tuple[str, ...] = FEATURES) -> tuple[np.ndarray, Any]:
    """What json reads: the values (an integer as float() makes it) and the ids as str()."""
    pupils = json.loads(body)
    values = np.array([[float(p[f]) for f in features] for p in pupils], dtype=np.float64)
    ids = [str(p[ID_NAME]) for p in pupils] if ID_NAME in pupils[0] else None
    return values.reshape(len(pupils), len(features)), ids


def table(read_back: Any, features: tuple[str, ...] = FEATURES) -> tuple[np.ndarray, Any]:
    n, cells, text, starts = read_back
    values = np.frombuffer(cells, dtype=np.float64).reshape(n, len(features))
    if text is None:
        return values, None
    packed = PackedIds([text], np.frombuffer(starts, dtype=np.int64), [0])
    return values, list(packed)


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal bit for bit: -0.0 is not 0.0."""
    return a.shape == b.shape and a.tobytes() == b.tobytes()


# --- numbers read ---------------------------------------------------------------------------

_DIGITS = st.text("0123456789", min_size=1, max_size=25)


@st.composite
def json_numbers(draw: st.DrawFn) -> str:
    """Texts of JSON's number grammar, with long mantissas and exponents near the limits."""
    sign: str = draw(st.sampled_from(["", "-"]))
    whole: str = draw(st.sampled_from(["0", *"123456789"])) + (
        "" if draw(st.booleans()) else draw(_DIGITS)
    )
    if whole.startswith("0"):
        whole = "0"
    fraction = "." + draw(_DIGITS) if draw(st.booleans()) else ""
    exponent: str = ""
    if draw(st.booleans()):
        exponent = (
            draw(st.sampled_from("eE"))
            + draw(st.sampled_from(["", "+", "-"]))
            + str(draw(st.integers(0, 400)))
        )
    return sign + whole + fraction + exponent


def _body(cell: str) -> bytes:
    return f'[{{"id":"a","maths":{cell},"info":1,"français":2}}]'.encode()


@settings(max_examples=600, deadline=None)
@given(number=json_numbers() | st.floats(allow_nan=False, allow_infinity=False).map(repr))
@example(number="-0")
@example(number="-0.0")
@example(number="9007199254740993")  # 2^53 + 1: not a double
@example(number="0.1")
@example(number="1e22")
@example(number="1e23")
@example(number="2.2250738585072011e-308")
@example(number="1e400")
@example(number="123456789012345678901234567890")
def test_a_number_is_read_as_json_reads_it(number: str) -> None:
    body = _body(number)
    expected = json.loads(number)
    as_float = (
        float(expected) if isinstance(expected, float) or abs(expected) < 2**1100 else math.inf
    )
    got = read(body)
    if not math.isfinite(as_float):
        assert got is None  # out of float range: the general reader says so
        return
    assert got is not None
    values, _ = table(got)
    assert struct.pack("<d", values[0, 0]) == struct.pack("<d", as_float)
    assert same_bits(values, reference(body)[0])


@pytest.mark.parametrize(
    "cell",
    [
        "01",
        "1.",
        ".5",
        "+1",
        "1e",
        "1e+",
        "--1",
        "0x10",
        "Infinity",
        "NaN",
        "-",
        "1_0",
        "1.e5",
        '"1"',
        "true",
        "null",
        "[1]",
        "{}",
        "1 2",
        "١",
    ],
)
def test_what_is_not_a_json_number_is_left_to_the_general_reader(cell: str) -> None:
    assert read(_body(cell)) is None


# --- bodies ---------------------------------------------------------------------------------

_ID_TEXT = st.text(st.characters(exclude_categories=["Cs"], exclude_characters='"\\'), max_size=12)
_SPACE = st.sampled_from(["", " ", "\n", "\t", "\r\n  "])


@st.composite
def usual_bodies(draw: st.DrawFn) -> bytes:
    """Pupils in the usual shape, keys in any order, any JSON whitespace, ids as strings
    without escapes or as integers, or none."""
    n = draw(st.integers(1, 20))
    ids = draw(st.sampled_from(["text", "integer", "none"]))
    pupils = []
    for _ in range(n):
        cells = [
            (json.dumps(f, ensure_ascii=False), draw(json_numbers().filter(_finite)))
            for f in FEATURES
        ]
        if ids == "text":
            cells.append(('"id"', '"' + draw(_ID_TEXT.filter(_no_control)) + '"'))
        elif ids == "integer":
            cells.append(('"id"', str(draw(st.integers(-(10**18) + 1, 10**18 - 1)))))
        order = draw(st.permutations(cells))
        items = [
            f"{draw(_SPACE)}{k}{draw(_SPACE)}:{draw(_SPACE)}{v}{draw(_SPACE)}" for k, v in order
        ]
        pupils.append("{" + ",".join(items) + "}")
    return ("[" + ",".join(draw(_SPACE) + p + draw(_SPACE) for p in pupils) + "]").encode()


def _finite(number: str) -> bool:
    value = json.loads(number)
    return (isinstance(value, int) and abs(value) < 2**1000) or math.isfinite(value)


def _no_control(text: str) -> bool:
    return all(ord(ch) >= 0x20 for ch in text)


@settings(max_examples=500, deadline=None)
@given(body=usual_bodies())
def test_a_body_in_the_usual_shape_is_read_as_json_reads_it(body: bytes) -> None:
    got = read(body)
    assert got is not None
    values, ids = table(got)
    expected_values, expected_ids = reference(body)
    assert same_bits(values, expected_values)
    assert ids == expected_ids
    if ids is not None:  # positions in characters, as PackedIds packs them
        assert np.array_equal(
            np.frombuffer(got[3], dtype=np.int64), PackedIds.join([expected_ids]).starts
        )


@settings(max_examples=600, deadline=None)
@given(body=usual_bodies(), data=st.data())
def test_whatever_the_reader_accepts_is_what_json_reads(body: bytes, data: st.DataObject) -> None:
    """A body broken anywhere (cut, a byte changed, a byte added) is refused, or read exactly
    as json reads it in the usual shape."""
    broken = _broken(body, data)
    got = read(broken)
    if got is None:
        return
    values, ids = table(got)
    expected_values, expected_ids = reference(broken)  # raises if it were not JSON
    assert same_bits(values, expected_values)
    assert ids == expected_ids


@pytest.mark.parametrize(
    "body",
    [
        b"[]",
        b"{}",
        b'[{"maths":1,"info":2}]',  # a feature missing
        b'[{"maths":1,"info":2,"fran\\u00e7ais":3}]',  # an escape
        b'[{"maths":1,"info":2,"fran\xc3\xa7ais":3,"maths":4}]',  # a key twice
        b'[{"maths":1,"info":2,"fran\xc3\xa7ais":3,"x":4}]',  # an unknown key
        b'[{"id":"a","maths":1,"info":2,"fran\xc3\xa7ais":3},{"maths":1,"info":2,"fran\xc3\xa7ais":3}]',
        b'[{"maths":1,"info":2,"fran\xc3\xa7ais":3},{"id":"a","maths":1,"info":2,"fran\xc3\xa7ais":3}]',
        b'[{"id":1.5,"maths":1,"info":2,"fran\xc3\xa7ais":3}]',  # an id is a string or an integer
        # an integer beyond 64 bits is a float to orjson: no id
        b'[{"id":1234567890123456789,"maths":1,"info":2,"fran\xc3\xa7ais":3}]',
        b'[{"id":true,"maths":1,"info":2,"fran\xc3\xa7ais":3}]',
        b'[{"id":"a\\"b","maths":1,"info":2,"fran\xc3\xa7ais":3}]',
        b'[{"id":"a\tb","maths":1,"info":2,"fran\xc3\xa7ais":3}]',  # a raw control character
        b'[{"id":"\xff","maths":1,"info":2,"fran\xc3\xa7ais":3}]',  # not UTF-8
        b'[{"id":"a","maths":1,"info":2,"fran\xc3\xa7ais":3}] x',
        b'[{"id":"a","maths":1,"info":2,"fran\xc3\xa7ais":3},]',
        b'[{"id":"a","maths":1,"info":2,"fran\xc3\xa7ais":3}',
    ],
)
def test_anything_but_the_usual_shape_is_left_to_the_general_reader(body: bytes) -> None:
    assert read(body) is None


def test_a_feature_named_like_the_id_is_left_to_the_general_reader() -> None:
    assert read(b'[{"id":1}]', (ID_NAME,)) is None


# --- columns --------------------------------------------------------------------------------


@st.composite
def number_lists(draw: st.DrawFn) -> bytes:
    numbers = draw(st.lists(json_numbers().filter(_finite), min_size=1, max_size=20))
    return ("[" + ",".join(draw(_SPACE) + n + draw(_SPACE) for n in numbers) + "]").encode()


@st.composite
def id_lists(draw: st.DrawFn) -> bytes:
    ids = draw(
        st.lists(
            _ID_TEXT.filter(_no_control).map(lambda i: f'"{i}"')
            | st.integers(-(10**18) + 1, 10**18 - 1).map(str),
            min_size=1,
            max_size=20,
        )
    )
    return ("[" + ",".join(draw(_SPACE) + i + draw(_SPACE) for i in ids) + "]").encode()


def _column_as_json_reads_it(body: bytes) -> np.ndarray:
    return np.array([float(v) for v in json.loads(body)], dtype=np.float64)


def _ids_as_json_read_them(body: bytes) -> list[str]:
    return [str(v) for v in json.loads(body)]


def _read_ids(body: bytes) -> list[str] | None:
    packed = read_ids(body, SEPARATOR.encode())
    if packed is None:
        return None
    text, starts = packed
    return list(PackedIds([text], np.frombuffer(starts, dtype=np.int64), [0]))


@settings(max_examples=300, deadline=None)
@given(column=number_lists(), ids=id_lists())
def test_a_column_and_ids_are_read_as_json_reads_them(column: bytes, ids: bytes) -> None:
    cells = read_column(column)
    assert cells is not None
    assert same_bits(np.frombuffer(cells, dtype=np.float64), _column_as_json_reads_it(column))
    assert _read_ids(ids) == _ids_as_json_read_them(ids)


def _broken(body: bytes, data: st.DataObject) -> bytes:
    """The body cut, with a byte changed or with a byte added, anywhere."""
    at = data.draw(st.integers(0, len(body)))
    byte = bytes([data.draw(st.integers(0, 255))])
    cut, changed, added = body[:at], body[:at] + byte + body[at + 1 :], body[:at] + byte + body[at:]
    return data.draw(st.sampled_from([cut, changed, added]))


@settings(max_examples=600, deadline=None)
@given(column=number_lists(), ids=id_lists(), data=st.data())
def test_whatever_the_list_readers_accept_is_what_json_reads(
    column: bytes, ids: bytes, data: st.DataObject
) -> None:
    broken_column = _broken(column, data)
    cells = read_column(broken_column)
    if cells is not None:
        expected = _column_as_json_reads_it(broken_column)
        assert same_bits(np.frombuffer(cells, dtype=np.float64), expected)
    broken_ids = _broken(ids, data)
    read_back = _read_ids(broken_ids)
    if read_back is not None:
        assert read_back == _ids_as_json_read_them(broken_ids)


@pytest.mark.parametrize(
    "body", [b"[]", b"[1,]", b"[1", b"1", b'["1"]', b"[1e400]", b"[null]", b"[[1]]", b"{}"]
)
def test_a_column_of_anything_else_is_left_to_the_general_reader(body: bytes) -> None:
    assert read_column(body) is None


@pytest.mark.parametrize(
    "body",
    [
        b"[]",
        b'["a",]',
        b'["a\\u0041"]',
        b"[1.5]",
        b"[true]",
        b"[null]",
        b'["a\tb"]',
        b"[12345678901234567890]",
        b'["\xff"]',
    ],
)
def test_ids_of_anything_else_are_left_to_the_general_reader(body: bytes) -> None:
    assert read_ids(body, SEPARATOR.encode()) is None


# --- ids ------------------------------------------------------------------------------------


@settings(max_examples=500, deadline=None)
@given(ids=st.lists(st.text(min_size=0, max_size=70), min_size=1, max_size=8))
def test_packed_ids_are_valid_only_when_each_is_valid_and_as_stripped(ids: list[str]) -> None:
    ids = [i.replace(SEPARATOR, " ") for i in ids]  # PackedIds never holds the separator
    if packed_ids_valid(PackedIds.join([ids])):
        assert first_bad_id(ids) is None
        assert all(i == i.strip() for i in ids)


def test_ids_that_need_stripping_are_stripped() -> None:
    body = '[{"id":" n1 ","maths":1,"info":2,"français":3}]'.encode()
    read_back = typed_students(body, FEATURES)
    assert read_back is not None
    assert list(read_back.ids or []) == ["n1"]
    blank = '[{"id":"   ","maths":1,"info":2,"français":3}]'.encode()
    assert typed_students(blank, FEATURES) is None  # the general reader names the pupil


# --- envelopes ------------------------------------------------------------------------------

_JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**20), 10**20)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=12,
)
_JSON_OBJECTS = st.dictionaries(st.text(max_size=8), _JSON_VALUES, max_size=8)


def _dumped(document: dict[str, Any], data: st.DataObject) -> tuple[bytes, bool]:
    """The object as JSON, with some whitespace or none, and whether every key is written
    as it is (json escapes none of them)."""
    space = data.draw(st.sampled_from(["", " ", "\n\t "]))
    ascii_only = data.draw(st.booleans())
    text = json.dumps(document, separators=("," + space, ":" + space), ensure_ascii=ascii_only)
    plain = all(json.dumps(key, ensure_ascii=ascii_only) == f'"{key}"' for key in document)
    return (data.draw(st.sampled_from(["", " ", "\r\n"])) + text + space).encode(), plain


def _members_as_json_reads_them(body: bytes) -> dict[str, Any] | None:
    places = read_object(body)
    if places is None:
        return None
    return {key: json.loads(body[start:end]) for key, (start, end) in places.items()}


@settings(max_examples=600, deadline=None)
@given(document=_JSON_OBJECTS, data=st.data())
def test_an_objects_members_are_found_where_json_reads_them(
    document: dict[str, Any], data: st.DataObject
) -> None:
    body, plain = _dumped(document, data)
    assert _members_as_json_reads_them(body) == (document if plain else None)


@settings(max_examples=1000, deadline=None)
@given(document=_JSON_OBJECTS, data=st.data())
def test_whatever_the_object_reader_finds_is_what_json_reads_when_each_member_reads(
    document: dict[str, Any], data: st.DataObject
) -> None:
    """The object reader checks the object, not its values, which their own readers check:
    if each member it finds reads as JSON, then the whole body is that object."""
    body = _broken(_dumped(document, data)[0], data)
    places = read_object(body)
    if places is None:
        return
    try:
        members = {key: json.loads(body[start:end]) for key, (start, end) in places.items()}
    except (json.JSONDecodeError, UnicodeDecodeError):
        return
    assert json.loads(body) == members


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"[]",
        b'"a"',
        b"{",
        b'{"a":1,"a":2}',  # a key twice: which one counts is for the general reader to say
        b'{"a\\u0062":1}',  # an escaped key
        b'{"a":1,}',
        b'{"a" 1}',
        b'{"a":}',
        b'{"a":1} x',
        b'{"a":"1}',
        b'{"a":[1,"]"}',
        b'{"\xff":1}',  # a key not in UTF-8
        b"{" + b",".join(b'"k%d":0' % i for i in range(129)) + b"}",  # more than 128 members
    ],
)
def test_anything_but_an_object_of_plain_keys_is_left_to_the_general_reader(body: bytes) -> None:
    assert read_object(body) is None


def test_an_object_reader_finds_values_even_of_brackets_in_strings() -> None:
    body = b' {"a" : "x]}\\"" , "b":[{"c":"]"}, 2],"":{}, "d":-1e5} '
    assert _members_as_json_reads_them(body) == json.loads(body)
    assert read_object(b"{}") == {}


# --- written --------------------------------------------------------------------------------


def written(figure: object, n: int) -> bytes:
    """A JSON list of the figures, as write_pupils writes one per pupil."""
    return write_pupils(b"[", (b"", b""), (figure,), n, {}, b"]", orjson.dumps)


_ROUNDED = st.integers(-(10**16), 10**16).map(lambda k: k / 1e6)


@settings(max_examples=600, deadline=None)
@given(
    numbers=st.lists(
        st.floats()
        | _ROUNDED
        | st.sampled_from(
            _EDGES := [
                0.0,
                -0.0,
                1e-5,
                -1e-5,
                9.99999e-6,
                1.1e-5,
                0.1,
                1e9,
                -1e9,
                999999999.999999,
                1e9 - 1e-6,
                123456.654321,
                5e-324,
                1.7976931348623157e308,
                math.inf,
                -math.inf,
                math.nan,
            ]
        ),
        min_size=1,
        max_size=40,
    )
)
def test_numbers_are_written_as_orjson_writes_them(numbers: list[float]) -> None:
    column = np.array(numbers, dtype=np.float64)
    assert written(column, len(numbers)) == orjson.dumps(numbers)
    assert written(column, len(numbers)) == orjson.dumps(column, option=orjson.OPT_SERIALIZE_NUMPY)


_ANY_ID = st.text(st.characters(exclude_categories=["Cs"]), max_size=20)


@settings(max_examples=500, deadline=None)
@given(ids=st.lists(_ANY_ID, min_size=1, max_size=20))
def test_ids_are_written_as_orjson_writes_them(ids: list[str]) -> None:
    assert written(ids, len(ids)) == orjson.dumps(ids)
    packed = PackedIds.join([[i.replace(SEPARATOR, " ") for i in ids]])
    expected = orjson.dumps(list(packed))
    assert written((packed.text, packed.starts.astype(np.int64)), len(ids)) == expected


def test_flags_texts_and_replaced_pupils() -> None:
    flags = np.array([True, False, True])
    assert written(flags, 3) == b"[true,false,true]"
    assert written(b"null", 3) == b"[null,null,null]"
    answer = write_pupils(
        b"{",
        (b"<", b"|", b">"),
        (np.array([1.5, 2.0, 3.25]), flags),
        3,
        {1: b"X"},
        b"}",
        orjson.dumps,
    )
    assert answer == b"{<1.5|true>,X,<3.25|true>}"


_BIG = 1024  # from this many pupils on, the answer is written without the GIL (UNLOCKED_PUPILS)
_PLAIN_NUMBER = st.integers(-(10**8), 10**8).map(lambda k: k / 100)
_SLOW_NUMBER = st.sampled_from([math.nan, 1e9, 1.0 / 3, 5e-324, -math.inf])
_SLOW_ID = st.sampled_from(['"', "\\", "\n", "é", "日本", "a\tb"])


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(_BIG, _BIG + 700),
    data=st.data(),
)
def test_a_big_answer_is_what_orjson_writes_wherever_python_is_needed(
    n: int, data: st.DataObject
) -> None:
    """A big answer is written without the GIL up to the first pupil that needs Python (a
    number or an id for orjson), then with it: the same text wherever that pupil is, first,
    last or none, and replaced pupils on either side of it."""
    rows = st.integers(0, n - 1)
    slow_numbers = data.draw(st.dictionaries(rows, _SLOW_NUMBER, max_size=3))
    slow_ids = data.draw(st.dictionaries(rows, _SLOW_ID, max_size=3))
    replaced = data.draw(st.dictionaries(rows, st.binary(min_size=1, max_size=5), max_size=4))
    numbers = np.array([k / 100 for k in range(n)], dtype=np.float64)
    for row, number in slow_numbers.items():
        numbers[row] = number
    ids = [slow_ids.get(row, f"n{row}") for row in range(n)]
    flags = np.arange(n) % 3 == 0
    packed = PackedIds.join([ids])
    answer = write_pupils(
        b"[",
        (b'{"id":', b',"x":', b',"f":', b"}"),
        ((packed.text, packed.starts.astype(np.int64)), numbers, flags),
        n,
        replaced,
        b"]",
        orjson.dumps,
    )
    expected = b",".join(
        replaced.get(row)
        or orjson.dumps({"id": ids[row], "x": float(numbers[row]), "f": bool(flags[row])})
        for row in range(n)
    )
    assert answer == b"[" + expected + b"]"


def test_a_big_answer_is_written_while_other_threads_run() -> None:
    """The GIL is let go while the pupils are written: another thread runs meanwhile (with
    it held, that thread could only run before the call or after it)."""
    n = 1_000_000  # some 0.1 s of writing: time enough for the other thread to be scheduled
    column = np.arange(n, dtype=np.float64) / 8
    seen: list[float] = []
    stop = threading.Event()

    def other_thread() -> None:
        while not stop.is_set():
            seen.append(time.perf_counter())
            time.sleep(0.0005)

    thread = threading.Thread(target=other_thread)
    thread.start()
    try:
        while not seen:
            time.sleep(0.001)
        began = time.perf_counter()
        answer = written(column, n)
        ended = time.perf_counter()
    finally:
        stop.set()
        thread.join()
    assert answer == orjson.dumps(column, option=orjson.OPT_SERIALIZE_NUMPY)
    halfway = began + (ended - began) / 2
    assert any(began < moment < halfway for moment in seen)


@pytest.mark.parametrize(
    ("figure", "error"),
    [
        (np.array([1, 2, 3]), TypeError),  # int64, not float64
        (np.array([1.0, 2.0]), ValueError),  # one figure short
        (np.zeros((3, 2))[:, 0], ValueError),  # not contiguous (numpy says so)
        (["a", "b"], ValueError),
        (("ab", np.array([0, 2], dtype=np.int64)), ValueError),  # starts of one id for three
        ((b"ab", np.array([0, 1, 2, 3])), TypeError),
    ],
)
def test_figures_that_do_not_fit_are_refused(figure: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        written(figure, 3)


@pytest.mark.parametrize("replaced", [{1: "X"}, {"1": b"X"}, {2**70: b"X"}])
def test_replaced_pupils_are_texts_by_row(replaced: Any) -> None:
    with pytest.raises((TypeError, OverflowError)):
        write_pupils(b"[", (b"", b""), (b"x",), 3, replaced, b"]", orjson.dumps)


def test_a_template_needs_one_text_more_than_figures() -> None:
    with pytest.raises(ValueError, match="one text more"):
        write_pupils(b"", (b"",), (b"x",), 1, {}, b"", orjson.dumps)


# --- memory ---------------------------------------------------------------------------------

_SANITIZED = "GRADECAST_SANITIZED_NATIVE"
_LOAD_SANITIZED = """
import importlib.machinery, importlib.util, sys
name, path = "app.tables._pupiljson", sys.argv[1]
loader = importlib.machinery.ExtensionFileLoader(name, path)
module = importlib.util.module_from_spec(importlib.util.spec_from_loader(name, loader))
loader.exec_module(module)
sys.modules[name] = module
import pytest
sys.exit(pytest.main(["-q", "-s", "-p", "no:cacheprovider", *sys.argv[2:]]))
"""


@pytest.mark.skipif(os.environ.get(_SANITIZED) == "1", reason="already the sanitized run")
def test_the_reader_and_writer_are_clean_under_address_and_undefined_behaviour_sanitizers(
    tmp_path: Path,
) -> None:
    """This file's tests and the typed-pupils ones again, on the C module built with
    AddressSanitizer and UBSan: a read or write out of bounds, a use after free or undefined
    behaviour stops the run with a report (an empty id once passed memcpy a null pointer)."""
    compiler = shutil.which("gcc")
    assert compiler is not None, "gcc builds the C module; it is needed here too"
    runtime = subprocess.run(
        [compiler, "-print-file-name=libasan.so"], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert Path(runtime).is_file(), "gcc's AddressSanitizer runtime (libasan) is missing"
    module = tmp_path / "_pupiljson.so"
    include = sysconfig.get_paths()["include"]
    source = Path(__file__).parents[1] / "app" / "tables" / "_pupiljson.c"
    subprocess.run(
        [
            compiler,
            "-O1",
            "-g",
            "-fsanitize=address,undefined",
            "-fno-omit-frame-pointer",
            "-fno-sanitize-recover=all",
            "-fPIC",
            "-shared",
            f"-I{include}",
            str(source),
            "-o",
            str(module),
        ],
        check=True,
    )
    env = {
        **os.environ,
        _SANITIZED: "1",
        "LD_PRELOAD": runtime,
        "ASAN_OPTIONS": "detect_leaks=0:abort_on_error=1",
        "UBSAN_OPTIONS": "print_stacktrace=1",
    }
    here = Path(__file__).parent
    run = subprocess.run(
        [
            sys.executable,
            "-c",
            _LOAD_SANITIZED,
            str(module),
            str(here / "test_pupiljson.py"),
            str(here / "test_typed_pupils.py"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        cwd=here.parent,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert " passed" in run.stdout


def test_the_answer_grows_when_dumps_writes_more_than_its_bound() -> None:
    """The answer is sized by its upper bound; a dumps of one's own may write more."""
    long = b"9" * 5000
    answer = write_pupils(
        b"[", (b"", b""), (np.array([math.nan] * 3),), 3, {}, b"]", lambda _: long
    )
    assert answer == b"[" + b",".join([long] * 3) + b"]"
    not_bytes: Any = lambda _: "text"  # noqa: E731
    with pytest.raises(TypeError, match="bytes"):
        write_pupils(b"[", (b"", b""), (np.array([math.nan]),), 1, {}, b"]", not_bytes)
