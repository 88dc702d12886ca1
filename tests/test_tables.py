"""Grade CSV reading and writing, on the exports French school software actually produces."""

import base64
import csv
import hashlib
import hmac
import io
import math
import re
from unittest.mock import patch

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.core.errors import InvalidInput
from app.tables import (
    DELIMITERS,
    GradeTable,
    Mark,
    TableError,
    TooManyRowsError,
    detect_dialect,
    feature_key,
    find_duplicate,
    read_grade_csv,
    read_grade_csv_fast,
    spreadsheet_safe,
    write_csv,
)
from app.tables import csv as csv_module
from app.tables.ids import PackedIds, id_problem, pseudonymise
from app.tables.json import columns_to_matrix

FRENCH_EXPORT = (
    "\ufeffINE;Maths;Info;Français;Concours\r\n"
    "070123456AB;12,5;14;11,75;13,5\r\n"
    "070123457CD;8;9,5;10;7,25\r\n"
    "070123458EF;16,25;17;15;18\r\n"
).encode()
# What detect_dialect counts as a decimal number, comma or point.
LOOKS_DECIMAL = re.compile(r"\s*[+-]?\d*[.,]\d+(?:[eE][+-]?\d+)?\s*")
FRENCH_VALUES = [[12.5, 14, 11.75, 13.5], [8, 9.5, 10, 7.25], [16.25, 17, 15, 18]]


def read_text(text: str, **options: object) -> GradeTable:
    return read_grade_csv(text.encode(), **options)  # type: ignore[arg-type]


def table_error(data: bytes | str, **options: object) -> TableError:
    raw = data.encode() if isinstance(data, str) else data
    with pytest.raises(TableError) as caught:
        read_grade_csv(raw, **options)  # type: ignore[arg-type]
    return caught.value


def both_readers(text: str, id_column: str | None = "id") -> tuple[GradeTable | None, GradeTable]:
    """What the numpy fast path and the csv general path each make of an upload."""
    data = text.encode()
    fast = read_grade_csv_fast(data, id_column=id_column)
    return fast, read_grade_csv(data, id_column=id_column, fast_path=False)


def assert_same_table(left: GradeTable, right: GradeTable) -> None:
    assert left.headers == right.headers
    assert left.keys == right.keys
    assert left.id_header == right.id_header
    assert left.ids == right.ids
    assert left.values.dtype == right.values.dtype == np.float64
    np.testing.assert_array_equal(left.values, right.values)


# --- feature_key ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "key"),
    [
        ("Français", "francais"),
        ("Note Maths", "note_maths"),
        (" INFO ", "info"),
        ("Histoire-Géo (coef. 2)", "histoire_geo_coef_2"),
        ("Œnologie", "oenologie"),
        ("ＭＡＴＨＳ", "maths"),
        ("__x__", "x"),
    ],
)
def test_feature_key(header: str, key: str) -> None:
    assert feature_key(header) == key


@pytest.mark.parametrize("header", ["", "  ", "%", "—", "日本"])
def test_feature_key_without_letters_or_digits_is_an_error(header: str) -> None:
    with pytest.raises(TableError) as caught:
        feature_key(header)
    assert caught.value.column == header


# --- the exports schools send ----------------------------------------------------------------


def test_french_excel_export_with_bom_and_decimal_commas() -> None:
    table = read_grade_csv(FRENCH_EXPORT, id_column="ine")
    assert table.id_header == "INE"
    assert table.ids == ["070123456AB", "070123457CD", "070123458EF"]
    assert table.headers == ["Maths", "Info", "Français", "Concours"]
    assert table.keys == ["maths", "info", "francais", "concours"]
    assert table.values.dtype == np.float64
    np.testing.assert_array_equal(table.values, FRENCH_VALUES)


def test_windows_1252_export_with_charset() -> None:
    data = "INE;Français;Mathématiques\r\nA1;12,5;13\r\n".encode("windows-1252")
    table = read_grade_csv(data, id_column="INE", charset="windows-1252")
    assert table.headers == ["Français", "Mathématiques"]
    assert table.keys == ["francais", "mathematiques"]
    np.testing.assert_array_equal(table.values, [[12.5, 13]])


def test_windows_1252_bytes_sent_as_utf8_name_the_line_and_the_fix() -> None:
    data = "INE;Maths;Info\r\nA1;12;13\r\nÉlodie;14;15\r\n".encode("windows-1252")
    error = table_error(data, id_column="INE")
    assert error.message == (
        "invalid UTF-8 on line 3; send UTF-8 or set charset=windows-1252 in Content-Type"
    )


def test_charset_is_case_and_quote_insensitive() -> None:
    data = "id;Français\r\n1;2\r\n".encode("iso-8859-1")
    assert read_grade_csv(data, charset='"ISO-8859-1"').headers == ["Français"]


def test_explicit_utf8_charset_still_strips_the_bom() -> None:
    table = read_grade_csv(FRENCH_EXPORT, id_column="ine", charset="utf-8")
    assert table.id_header == "INE"


def test_unknown_charset() -> None:
    error = table_error(FRENCH_EXPORT, charset="klingon-1")
    assert "klingon-1" in error.message


def test_utf16_excel_unicode_text_is_recognised_by_its_bom() -> None:
    data = "INE\tMaths\tFrançais\r\nA1\t12,5\t13\r\n".encode("utf-16")
    table = read_grade_csv(data, id_column="ine")
    assert table.headers == ["Maths", "Français"]
    np.testing.assert_array_equal(table.values, [[12.5, 13]])


def test_tab_separated_with_decimal_commas() -> None:
    table = read_text("id\tMaths\tInfo\n1\t12,5\t9\n2\t7\t10,25\n")
    assert table.ids == ["1", "2"]
    np.testing.assert_array_equal(table.values, [[12.5, 9], [7, 10.25]])


def test_tab_separated_with_decimal_points() -> None:
    table = read_text("id\tMaths\tInfo\n1\t12.5\t9\n")
    np.testing.assert_array_equal(table.values, [[12.5, 9]])


def test_comma_separated_with_quoted_decimal_commas() -> None:
    table = read_text('id,Maths,Info\r\n"1","12,5","9"\r\n"2",7.5,"10,25"\r\n')
    assert table.ids == ["1", "2"]
    np.testing.assert_array_equal(table.values, [[12.5, 9], [7.5, 10.25]])


def test_comma_separated_with_unquoted_decimal_comma_explains_quoting() -> None:
    error = table_error("id,Maths,Info\r\n1,12,5,9\r\n")
    assert error.row == 1
    assert error.message.startswith("row 1 has 4 values, the header has 3 columns")
    assert '"12,5"' in error.message


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"], ids=["LF", "CRLF", "CR"])
def test_line_endings(newline: str) -> None:
    text = newline.join(["INE;Maths;Info", "A1;12,5;13", "B2;8;9,5"]) + newline
    table = read_text(text, id_column="ine")
    assert table.ids == ["A1", "B2"]
    np.testing.assert_array_equal(table.values, [[12.5, 13], [8, 9.5]])


def test_last_line_without_newline() -> None:
    table = read_text("id;Maths;Info\r\n1;2;3")
    np.testing.assert_array_equal(table.values, [[2, 3]])


def test_blank_lines_and_empty_rows_are_skipped_and_not_counted() -> None:
    text = "\r\nid;Maths;Info\r\n1;2;3\r\n\r\n;;\r\n2;4;5\r\n\r\n;;\r\n\r\n"
    table = read_text(text)
    assert table.ids == ["1", "2"]
    np.testing.assert_array_equal(table.values, [[2, 3], [4, 5]])
    error = table_error(text.replace("2;4;5", "2;4;x"))
    assert (error.row, error.column) == (2, "Info")


@pytest.mark.filterwarnings("error")
def test_blank_lines_cause_no_warning() -> None:
    text = "id;Maths;Info\n1;2;3\n\n2;4;5\n\n"
    assert read_text(text, max_rows=10).ids == ["1", "2"]


def test_quoted_fields_with_delimiters_quotes_and_newlines_in_ids() -> None:
    text = 'id;Maths;Info\r\n"Dupont; Jean";"12,5";3\r\n"Le ""Grand""";4;5\r\n'
    table = read_text(text)
    assert table.ids == ["Dupont; Jean", 'Le "Grand"']
    np.testing.assert_array_equal(table.values, [[12.5, 3], [4, 5]])


def test_excel_sep_line() -> None:
    table = read_text("sep=,\r\nid,Maths;Info\r\n1,12.5\r\n")
    assert table.headers == ["Maths;Info"]
    np.testing.assert_array_equal(table.values, [[12.5]])
    assert "sep=|" in table_error("sep=|\r\nid|a\r\n").message


# --- separator detection -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "delimiter", "headers"),
    [
        ("Nom, prénom;Maths;Info\nDupont, Jean;12,5;13\n", ";", ["Nom, prénom", "Maths", "Info"]),
        ("Nom, prénom\tMaths\nDupont, Jean\t12,5\n", "\t", ["Nom, prénom", "Maths"]),
        (
            "Nom, prénom, classe;Maths\nDupont, Jean, 3B;12,5\nMartin, Léa, 3C;9\n",
            ";",
            ["Nom, prénom, classe", "Maths"],
        ),
        ('"Maths;Info",Physique\n1,2\n', ",", ["Maths;Info", "Physique"]),
        ("Maths,Info;Physique,Chimie\n1,2,3\n", ",", ["Maths", "Info;Physique", "Chimie"]),
        ("Maths;Info,Physique\n1;2,3\n", ";", ["Maths", "Info,Physique"]),
    ],
)
def test_separator_detection(text: str, delimiter: str, headers: list[str]) -> None:
    assert detect_dialect(text.encode())[0] == delimiter
    table = read_text(text, id_column=headers[0])
    assert [table.id_header, *table.headers] == headers


def test_a_single_column_is_not_a_grade_table() -> None:
    error = table_error("Maths\n12\n13\n")
    assert "at least 2 columns" in error.message


@pytest.mark.parametrize(
    ("text", "dialect"),
    [
        (FRENCH_EXPORT.decode(), (";", True)),
        ("id;Maths\n1;12.5\n", (";", False)),
        ("id;Maths\n1;12\n", (";", True)),
        ("id,Maths\n1,12.5\n", (",", False)),
        ('id,Maths\n1,"12,5"\n', (",", True)),
        ("id,Maths\n1,12\n", (",", False)),
        ("id\tMaths\n1\t12,5\n", ("\t", True)),
        ("id\tMaths\n1\t12.5\n", ("\t", False)),
        ("id;Maths;Info\n1,5;12.5;13.5\n2,5;11.5;7\n", (";", False)),
        ("sep=,\nid;x,Maths\n1;2,12.5\n", (",", False)),
    ],
)
def test_detect_dialect(text: str, dialect: tuple[str, bool]) -> None:
    assert detect_dialect(text.encode()) == dialect


# --- header rules --------------------------------------------------------------------------


def test_empty_header_cell_names_its_position() -> None:
    error = table_error("id;Maths; ;Info\n1;2;3;4\n")
    assert (error.row, error.column) == (0, "3")
    assert "header cell 3 is empty" in error.message


def test_duplicate_headers_after_feature_key_name_both() -> None:
    error = table_error("id;Maths;Info;maths \n1;2;3;4\n")
    assert error.column == "maths"
    assert "'Maths'" in error.message
    assert "'maths'" in error.message


def test_header_without_letters_or_digits() -> None:
    assert table_error("id;Maths;%\n1;2;3\n").column == "%"


@pytest.mark.parametrize("id_header", ["INE", "ine", " Ine "])
def test_id_column_matches_case_insensitively(id_header: str) -> None:
    table = read_text(f"Maths;{id_header};Info\n12;A1;13\n", id_column="INE")
    assert table.id_header == id_header.strip()
    assert table.ids == ["A1"]
    assert table.headers == ["Maths", "Info"]
    np.testing.assert_array_equal(table.values, [[12, 13]])


def test_default_id_column_is_id() -> None:
    table = read_text("Id;Maths\n7;12\n")
    assert (table.id_header, table.ids, table.headers) == ("Id", ["7"], ["Maths"])


def test_without_id_column_every_column_is_a_value() -> None:
    table = read_text("id;Maths\n7;12\n", id_column=None)
    assert (table.id_header, table.ids, table.headers) == (None, None, ["id", "Maths"])
    np.testing.assert_array_equal(table.values, [[7, 12]])


def test_absent_id_column_means_no_ids() -> None:
    table = read_text("Maths;Info\n12;13\n", id_column="ine")
    assert (table.id_header, table.ids) == (None, None)
    np.testing.assert_array_equal(table.values, [[12, 13]])


def test_header_only_is_an_empty_table() -> None:
    table = read_text("INE;Maths;Info\r\n\r\n", id_column="ine")
    assert table.ids == []
    assert table.values.shape == (0, 2)
    assert table.values.dtype == np.float64


# --- data rows -----------------------------------------------------------------------------


def test_ragged_row_names_the_row() -> None:
    error = table_error("id;a;b;c\n1;2;3;4\n2;2;3;4\n3;2;3;4\n4;2;3;4\n5;2;3\n6;2;3;4\n")
    assert error.message == "row 5 has 3 values, the header has 4 columns"
    assert (error.row, error.column) == (5, None)


def test_row_with_too_many_values() -> None:
    error = table_error("id;a;b\n1;2;3\n2;2;3;4\n")
    assert error.message == "row 2 has 4 values, the header has 3 columns"


@pytest.mark.parametrize(
    "cell",
    [
        "abc",
        "nan",
        "NaN",
        "inf",
        "-inf",
        "Infinity",
        "0x10",
        "1_000",
        "1e400",
        "１２",
        "١٢",
        "12 %",
        "1.234,5",
        "1,234.5",
        "1 234",
        "1\u00a0234",
        "12,5,1",
        "- 3",
    ],
)
def test_not_a_number_names_row_and_column_but_never_the_cell(cell: str) -> None:
    error = table_error(f"id;Maths;Info\n1;12;13\n2;{cell};14\n")
    assert (error.row, error.column) == (2, "Maths")
    assert error.message.startswith("row 2, column 'Maths': ")
    # The cell may be a pupil's name: the error says what kind of value it is, not which.
    assert cell.strip() not in error.message.removeprefix("row 2, column 'Maths': ")


def test_thousands_separator_gets_a_hint() -> None:
    assert "thousands separator" in table_error("id;Maths\n1;1 234\n").message


@pytest.mark.parametrize("cell", ["", "  "])
def test_an_empty_cell_is_an_empty_mark(cell: str) -> None:
    """What it means (refused, or the pupil left out) is the upload's choice (special_marks)."""
    table = read_text(f"id;Maths;Info\n1;12;{cell}\n")
    assert table.marks == [Mark(0, 1, "excluded", "empty")]
    assert math.isnan(table.values[0, 1])


@pytest.mark.parametrize(
    ("cell", "number"),
    [
        (" 12,5 ", 12.5),
        ("12.5", 12.5),
        ("+3", 3),
        ("-0,5", -0.5),
        (",5", 0.5),
        ("1e2", 100),
        ("1,5E-1", 0.15),
        ('"13"', 13),
        ("\u00a014\u00a0", 14),
    ],
)
def test_numbers_accepted(cell: str, number: float) -> None:
    table = read_text(f"id;Maths\n1;{cell}\n")
    assert table.values[0, 0] == number


def test_first_bad_cell_in_reading_order_is_reported() -> None:
    error = table_error("id;a;b\n1;1;2\n2;3;x\n3;y;4\n")
    assert (error.row, error.column) == (2, "b")


@pytest.mark.parametrize(
    ("pupil_id", "problem"),
    [("", "empty"), ("   ", "empty"), ("x" * 65, "65 characters"), ("a\x07b", "control")],
)
def test_bad_ids(pupil_id: str, problem: str) -> None:
    error = table_error(f"INE;Maths\nA;1\n{pupil_id};2\n", id_column="ine")
    assert (error.row, error.column) == (2, "INE")
    assert problem in error.message


def test_ids_are_stripped_and_may_be_64_characters_long() -> None:
    longest = "x" * 64
    table = read_text(f"id;Maths\n  A1 ;1\n{' ' * 10}{longest}{' ' * 10};2\n")
    assert table.ids == ["A1", longest]


def test_nul_bytes_are_rejected() -> None:
    error = table_error(b"id;Maths\n1;2\x00\n")
    assert "line 2" in error.message
    assert "NUL" in error.message


@pytest.mark.parametrize(
    "data", [b"PK\x03\x04\x14\x00\x06\x00", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", b"%PDF-1.7"]
)
def test_workbooks_and_documents_are_not_csv(data: bytes) -> None:
    assert "not CSV" in table_error(data + b"\x00" * 40).message


@pytest.mark.parametrize("data", [b"", b"\xef\xbb\xbf", b"\r\n\r\n", b"  \n"])
def test_empty_file(data: bytes) -> None:
    assert "empty" in table_error(data).message


# --- max_rows ------------------------------------------------------------------------------


def test_max_rows_allows_exactly_the_limit() -> None:
    assert len(read_text("id;a\n1;1\n2;2\n\n;\n", max_rows=2).values) == 2


def test_max_rows_exceeded() -> None:
    with pytest.raises(TooManyRowsError) as caught:
        read_text("id;a\n1;1\n2;2\n3;3\n", max_rows=2)
    assert (caught.value.row, caught.value.limit) == (3, 2)
    assert "more than 2 rows" in caught.value.message


def test_max_rows_stops_before_reading_the_rest() -> None:
    # A field longer than csv's field limit breaks parsing: only a reader that stops
    # early reports the row count instead.
    text = "id;a\n1;1\n2;2\n3;3\n4;" + "9" * 200_000 + "\n"
    with pytest.raises(TableError, match="cannot be read as CSV"):
        read_text(text)
    with pytest.raises(TooManyRowsError):
        read_text(text, max_rows=2)


# --- the fast path really is taken, and agrees with the general one ---------------------------


@pytest.mark.parametrize(
    "text",
    [
        FRENCH_EXPORT.decode("utf-8-sig"),
        "id,Maths,Info\r\n1,12.5,9\r\n2,7,8\r\n",
        "id\tMaths\tInfo\n1\t12,5\t9\n",
        "id;Maths;Info\r1;12,5;9\r2;7;8\r",
        'id;Maths;Info\n"A;1";"12,5";9\n\n',
    ],
)
def test_common_dialects_take_the_fast_path(text: str) -> None:
    fast, general = both_readers(text, id_column="id" if text.startswith("id") else "ine")
    assert fast is not None
    assert_same_table(fast, general)


def test_max_rows_at_the_limit_keeps_the_fast_path() -> None:
    data = ("id;Maths\r\n" + "".join(f"{i};{i},5\r\n" for i in range(1, 101))).encode()
    assert read_grade_csv_fast(data, max_rows=100) is not None
    assert read_grade_csv_fast(data, max_rows=99) is None


# Cells both readers must agree on; the odd ones are rare so that whole rows often pass.
GOOD_CELLS = ["1", "12,5", "12.5", " 3 ", "-1e3", '"4"', '"7" ', "\u00a05", '"1,5"', "+.5"]
ODD_CELLS = [
    "",
    " ",
    "\t",
    "nan",
    "x",
    "1_0",
    "１",
    "1e999",
    '"1;2"',
    '"a""b"',
    ' "8"',
    '"9"x',
    '"',
    'a"b',
    '"a\nb"',
    '"a\rb"',
    "1,2,3",
]
ID_CELLS = ["A1", " B2 ", '"C;3"', '"D""4"', "é", "x" * 64, " " * 3 + "y" * 63, "\u00a0z"]
cells = st.sampled_from(GOOD_CELLS * 8 + ODD_CELLS)


@st.composite
def messy_csv(draw: st.DrawFn) -> str:
    delimiter = draw(st.sampled_from(DELIMITERS))
    rows = draw(
        st.lists(
            st.tuples(
                st.sampled_from(ID_CELLS * 3 + ODD_CELLS),
                # Mostly the header's width, sometimes one more or one less.
                st.lists(cells, min_size=2, max_size=2) | st.lists(cells, min_size=1, max_size=3),
            ).map(lambda row: [row[0], *row[1]]),
            max_size=6,
        )
    )
    blank_lines = draw(st.lists(st.sampled_from(["", delimiter * 2]), max_size=2))
    lines = [delimiter.join(["id", "a", "b"]), *(delimiter.join(row) for row in rows)]
    lines += blank_lines
    newlines = draw(
        st.sampled_from(["\n", "\r\n", "\r"]).flatmap(
            lambda usual: st.lists(
                st.sampled_from([usual] * 9 + ["\n", "\r\n", "\r"]),
                min_size=len(lines),
                max_size=len(lines),
            )
        )
    )
    return "".join(line + newline for line, newline in zip(lines, newlines, strict=True))


@settings(max_examples=500)
@given(messy_csv())
def test_fast_path_accepts_nothing_the_general_path_rejects(text: str) -> None:
    fast = read_grade_csv_fast(text.encode())
    if fast is not None:
        assert_same_table(fast, read_grade_csv(text.encode(), fast_path=False))


@settings(max_examples=300)
@given(messy_csv(), st.integers(min_value=1, max_value=40))
def test_the_fast_path_read_in_small_pieces_agrees_too(text: str, piece: int) -> None:
    """The fast reader takes the body a megabyte at a time; made a few bytes, every cut
    between two pieces is met, and still it accepts only what the general reader does."""
    with patch.object(csv_module, "_CHUNK_BYTES", piece):
        fast = read_grade_csv_fast(text.encode())
    if fast is not None:
        assert_same_table(fast, read_grade_csv(text.encode(), fast_path=False))


def big_export(rows: int, newline: str = "\r\n", **cells: str) -> str:
    """A semicolon export past the sniffer's head (so it is read in pieces), ids unique."""
    maths = cells.get("maths", "12,5")
    return (
        "Identifiant;Maths;Info;Concours"
        + newline
        + "".join(
            f"{cells.get('prefix', 'é')}{i:09d};{maths};{i % 20};1{i % 9},25{newline}"
            for i in range(rows)
        )
    )


@pytest.mark.parametrize(
    ("text", "charset"),
    [
        (big_export(30_000), None),
        ("\ufeff" + big_export(30_000, "\n"), None),
        ("sep=;\n" + big_export(30_000), None),
        (big_export(30_000, "\r"), None),
        (big_export(30_000, prefix="Hélène-"), "windows-1252"),
        (big_export(30_000, prefix='"Dupont; J"'), None),
        (big_export(30_000) + "\r\n\r\n", None),
    ],
    ids=["crlf", "bom", "sep-line", "old-mac-cr", "windows-1252", "quoted-ids", "blank-end"],
)
def test_a_big_export_is_read_fast_in_pieces_and_alike(text: str, charset: str | None) -> None:
    data = text.encode(charset or "utf-8")
    with patch.object(csv_module, "_CHUNK_BYTES", 50_000):
        fast = read_grade_csv_fast(data, id_column="identifiant", charset=charset)
    assert fast is not None
    assert isinstance(fast.ids, PackedIds)
    general = read_grade_csv(data, id_column="identifiant", charset=charset, fast_path=False)
    assert_same_table(fast, general)
    assert fast.values.shape == (30_000, 3)


def test_a_bad_cell_deep_in_a_big_export_is_named_by_the_general_reader() -> None:
    text = big_export(30_000)
    lines = text.split("\r\n")
    lines[25_001] = lines[25_001].replace(";12,5;", ";douze;")
    error = table_error("\r\n".join(lines), id_column="identifiant")
    assert (error.row, error.column) == (25_001, "Maths")
    assert "douze" not in str(error)


@given(st.binary(max_size=300), st.sampled_from([None, "utf-8", "windows-1252", "utf-16"]))
def test_any_bytes_give_a_table_or_a_table_error(data: bytes, charset: str | None) -> None:
    try:
        table = read_grade_csv(data, charset=charset, max_rows=5)
    except TableError:
        return
    assert table.values.shape[1] == len(table.headers)
    assert np.isfinite(table.values).all()


# --- duplicates ----------------------------------------------------------------------------


def test_find_duplicate() -> None:
    assert find_duplicate(["a", "b", "c"]) is None
    assert find_duplicate([]) is None
    assert find_duplicate(["a", "b", "c", "b", "a"]) == (2, 4, "b")
    assert find_duplicate(PackedIds.join([["a", "b"], ["c", "b", "a"]])) == (2, 4, "b")


class Colliding(str):
    """An id whose hash is that of every other: only the exact comparison tells them apart."""

    def __hash__(self) -> int:
        return 7


def test_find_duplicate_compares_ids_whose_hashes_collide() -> None:
    ids = [Colliding(x) for x in ("a", "b", "c", "d")]
    assert find_duplicate(ids) is None
    assert find_duplicate([*ids, Colliding("c"), Colliding("b")]) == (3, 5, "c")


@given(st.lists(st.sampled_from(["A1", "B2", "é", "x" * 64, "C 3", "D;4"]), max_size=12))
def test_find_duplicate_is_the_first_id_seen_twice(ids: list[str]) -> None:
    seen: dict[str, int] = {}
    expected = None
    for row, pupil_id in enumerate(ids, start=1):
        if pupil_id in seen:
            expected = (seen[pupil_id], row, pupil_id)
            break
        seen[pupil_id] = row
    assert find_duplicate(ids) == expected
    assert find_duplicate(PackedIds.join([ids[:5], ids[5:]])) == expected


# --- packed ids ----------------------------------------------------------------------------


@given(
    st.lists(st.lists(st.text(alphabet="aé;z 1", min_size=1, max_size=5), max_size=6), max_size=4),
    st.integers(min_value=-8, max_value=8),
    st.integers(min_value=-8, max_value=8),
)
def test_packed_ids_read_as_the_list_they_pack(parts: list[list[str]], a: int, b: int) -> None:
    ids = [pupil_id for part in parts for pupil_id in part]
    packed = PackedIds.join(parts)
    assert len(packed) == len(ids)
    assert list(packed) == ids
    assert packed == ids
    assert ids == packed
    assert [packed[i] for i in range(-len(ids), len(ids))] == ids[-len(ids) :] + ids
    assert packed[a:b] == ids[a:b]
    assert list(packed[a:b]) == ids[a:b]
    assert packed[a:b].text == "\n".join(ids[a:b])
    assert PackedIds.join([packed[:a], packed[a:]]) == ids
    with pytest.raises(IndexError):
        packed[len(ids)]


def reference_pseudonym(pupil_id: str, pepper: bytes, organisation: str) -> str:
    """The pseudonym as its definition says, written the plain way."""
    mac = hmac.new(pepper, organisation.encode() + b"\0" + pupil_id.encode(), hashlib.sha256)
    return "p_" + base64.b32encode(mac.digest()[:15]).decode("ascii").lower()


@settings(max_examples=50)
@given(st.lists(st.text(min_size=1, max_size=20), max_size=30), st.binary(min_size=1, max_size=40))
def test_pseudonyms_are_the_keyed_hash_they_are_documented_as(
    ids: list[str], pepper: bytes
) -> None:
    pseudonyms = pseudonymise(ids, pepper, "org-1")
    assert list(pseudonyms) == [reference_pseudonym(i, pepper, "org-1") for i in ids]


def test_pseudonyms_of_a_national_cohort_cross_blocks_alike() -> None:
    ids = [f"{i:09d}AB" for i in range(70_000)]  # more than one block of 65,536
    pseudonyms = pseudonymise(ids, b"pepper", "org-1")
    for i in (0, 65_535, 65_536, 69_999):
        assert pseudonyms[i] == reference_pseudonym(ids[i], b"pepper", "org-1")
    assert len(set(pseudonyms)) == len(ids)


# --- writing -------------------------------------------------------------------------------


def test_write_french_excel_dialect() -> None:
    data = write_csv(
        ["INE", "Prédiction"],
        [["A;1", 'Le "Grand"', "C3"], np.array([12.5, math.nan, 0.1])],
        delimiter=";",
        decimal_comma=True,
    )
    assert data == 'INE;Prédiction\r\n"A;1";12,5\r\n"Le ""Grand""";\r\nC3;0,1\r\n'.encode()


def test_write_comma_dialect_numbers() -> None:
    data = write_csv(
        ["id", "x", "n"],
        [["a", "b", "c"], [1 / 3, None, 1e-05], [1, np.int64(2), 3.0]],
    )
    assert data == b"id,x,n\r\na,0.3333333333333333,1\r\nb,,2\r\nc,1e-05,3.0\r\n"


def test_write_decimal_comma_with_comma_delimiter_quotes_numbers() -> None:
    data = write_csv(["id", "x"], [["a"], np.array([12.5])], decimal_comma=True)
    assert data == b'id,x\r\na,"12,5"\r\n'
    assert read_grade_csv(data).values[0, 0] == 12.5


def test_write_bom_for_excel() -> None:
    data = write_csv(["id", "x"], [["a"], [1.5]], bom=True)
    assert data.startswith(b"\xef\xbb\xbfid,x\r\n")


@pytest.mark.parametrize(
    ("header", "columns", "options"),
    [
        (["a", "b"], [[1.0]], {}),
        (["a", "b"], [[1.0], [1.0, 2.0]], {}),
        (["a"], [[1.0]], {"delimiter": "|"}),
        (["a"], [np.array([math.inf])], {}),
        (["a"], [[-math.inf]], {}),
        (["a"], [[True]], {}),
        (["a"], [[{"x": 1}]], {}),
    ],
)
def test_write_rejects_what_it_cannot_write(
    header: list[str], columns: list[list[float]], options: dict[str, object]
) -> None:
    with pytest.raises((ValueError, TypeError)):
        write_csv(header, columns, **options)  # type: ignore[arg-type]


DIALECTS = [(",", False), (",", True), (";", True), (";", False), ("\t", True), ("\t", False)]
ids_strategy = (
    st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), max_size=64)
    .map(str.strip)
    .filter(bool)
)
finite_floats = st.floats(allow_nan=False, allow_infinity=False)


@settings(max_examples=300)
@given(
    st.sampled_from(DIALECTS),
    st.integers(min_value=1, max_value=4),
    st.lists(ids_strategy, max_size=8),
    st.data(),
)
def test_write_then_read_round_trips(
    dialect: tuple[str, bool], n_values: int, ids: list[str], data: st.DataObject
) -> None:
    delimiter, decimal_comma = dialect
    headers = ["Maths", "Info", "Français", "Histoire-Géo"][:n_values]
    values = np.array(
        [data.draw(st.lists(finite_floats, min_size=n_values, max_size=n_values)) for _ in ids]
    ).reshape(len(ids), n_values)
    written = write_csv(
        ["INE", *headers],
        [ids, *values.T],
        delimiter=delimiter,
        decimal_comma=decimal_comma,
    )
    table = read_grade_csv(written, id_column="ine")
    # Ids a spreadsheet would run as formulas come back behind their apostrophe.
    assert table.ids == [spreadsheet_safe(i) for i in ids]
    assert table.headers == headers
    np.testing.assert_array_equal(table.values, values)
    detected_delimiter, detected_comma = detect_dialect(written)
    assert detected_delimiter == delimiter
    ids_look_like_numbers = any(LOOKS_DECIMAL.fullmatch(i) for i in ids)
    if not ids_look_like_numbers and any("." in repr(float(x)) for x in values.flat):
        assert detected_comma == decimal_comma


@pytest.mark.parametrize("dangerous", ['=HYPERLINK("http://x")', "+1+1", "-2+3", "@SUM(A1)"])
def test_written_text_never_starts_a_formula(dangerous: str) -> None:
    written = write_csv(["id", dangerous], [[dangerous], [1.5]], delimiter=";").decode()
    header, row = csv.reader(io.StringIO(written), delimiter=";")
    assert header == ["id", "'" + dangerous]
    assert row == ["'" + dangerous, "1.5"]


def test_negative_numbers_are_written_as_numbers() -> None:
    assert write_csv(["x"], [np.array([-1.5])]) == b"x\r\n-1.5\r\n"


@pytest.mark.parametrize(
    ("cell", "kind", "code"),
    [
        ("Abs", "excluded", "Abs"),
        ("ABS", "excluded", "Abs"),
        ("absent", "excluded", "Abs"),
        (" Disp ", "excluded", "Disp"),
        ("Dispensé", "excluded", "Disp"),
        ("N.Not", "excluded", "N.Not"),
        ("n not", "excluded", "N.Not"),
        ("NN", "excluded", "N.Not"),
        ("non noté", "excluded", "N.Not"),
        ("NE", "excluded", "NE"),
        ("Inap", "excluded", "Inap"),
        ("inapte", "excluded", "Inap"),
        ("N.Rdu", "excluded", "N.Rdu"),
        ("non rendu", "excluded", "N.Rdu"),
        ("EXC", "excluded", "EXC"),
        ("att", "excluded", "ATT"),
        ("", "excluded", "empty"),
        ("Abs*", "zero", "Abs*"),
        ("n.rdu*", "zero", "N.Rdu*"),
    ],
)
def test_the_special_marks_of_school_software(cell: str, kind: str, code: str) -> None:
    table = read_text(f"id;Maths;Info\n1;12;{cell}\n2;11;10\n")
    assert table.marks == [Mark(0, 1, kind, code)]  # type: ignore[arg-type]


@pytest.mark.parametrize("cell", ["Absent-e", "abs**", "Dupont", "A/B", "12/"])
def test_what_looks_like_a_mark_but_is_none_is_refused(cell: str) -> None:
    error = table_error(f"id;Maths\n1;{cell}\n")
    assert (error.row, error.column) == (1, "Maths")
    assert cell not in error.message.removeprefix("row 1, column 'Maths': ")


def test_resolve_marks_refuses_or_drops() -> None:
    from app.core.errors import InvalidInput
    from app.tables import resolve_marks

    table = read_text("id;Maths;Info\n1;Abs;15/20\n2;Abs*;10\n3;12;13\n")
    labels = ["Maths", "Info"]
    with pytest.raises(InvalidInput) as refused:
        resolve_marks(
            table.values,
            table.marks,
            special_marks="refuse",
            grade_range=(0.0, 20.0),
            labels=labels,
            field="csv",
            one_based_rows=True,
        )
    assert refused.value.errors[0]["loc"] == ["body", "csv", 1, "Maths"]
    resolved = resolve_marks(
        table.values,
        table.marks,
        special_marks="drop",
        grade_range=(0.0, 20.0),
        labels=labels,
        field="csv",
        one_based_rows=True,
    )
    assert resolved.keep.tolist() == [False, True, True]
    assert resolved.values[1].tolist() == [0.0, 10.0]
    assert resolved.values[0, 1] == 15.0
    assert resolved.special_marks == {"Maths": {"Abs": 1, "Abs*": 1}}
    assert resolved.rescaled == {"Info": 1}


def test_chosen_columns_leave_the_others_unread() -> None:
    from app.tables import Columns

    data = "Nom;INE;Classe;Maths;Info;Concours\nDupont;X1;3A;12;13;14\nMartin;X2;3B;Abs;9;8\n"
    table = read_grade_csv(
        data.encode(),
        columns=Columns(
            values=["maths", "Info"], id_column="INE", group_column="Classe", with_target=True
        ),
    )
    assert table.headers == ["Maths", "Info", "Concours"]
    assert table.ids == ["X1", "X2"]
    assert table.groups == ["3A", "3B"]
    assert table.ignored == ["Nom"]
    assert table.marks == [Mark(1, 0, "excluded", "Abs")]


def test_write_numbers_as_repr_writes_them_at_every_magnitude() -> None:
    rng = np.random.default_rng(7)
    floats = np.concatenate(
        [
            rng.standard_normal(5000) * 10.0 ** rng.integers(-30, 30, 5000),
            [0.0, -0.0, 1e16, 1e-4, 9.999e-5, 5e-324, 1.7976931348623157e308, 12.5, math.nan],
        ]
    )
    integers = np.arange(len(floats), dtype=np.int64) - 3
    out = write_csv(["i", "x"], [integers, floats]).decode().split("\r\n")
    assert out[0] == "i,x"
    assert out[-1] == ""
    expected = [
        f"{i},{'' if math.isnan(x) else repr(x)}"
        for i, x in zip(integers.tolist(), floats.tolist(), strict=True)
    ]
    assert out[1:-1] == expected


@pytest.mark.parametrize(
    "text",
    [
        "a;id;b\r\n1;x1;2\r\n3; x2 ;4,5\r\n",  # the id between grades, padded
        "a,b,id\n1,2,x1\n3,4,x2",  # the id last, no final line end
        "a\tid\tb\r\n1,5\tq\t2\r\n0\tr\t20\r\n",  # tabs and a decimal comma
        'id;a;b\r\n"x;1";1;2\r\ny;3;4\r\n',  # a quoted id (numpy's reader reads it)
    ],
)
def test_fast_path_reads_the_id_column_wherever_it_is(text: str) -> None:
    fast, general = both_readers(text)
    assert fast is not None
    assert_same_table(fast, general)
    assert fast.ids is not None
    assert len(fast.ids) == 2


_RAW_IDS = st.one_of(
    st.text(max_size=70),
    st.sampled_from(["", " ", " n1 ", "a\x00b", "a\u2028b", "x" * 65, 'a,"b']),
    st.integers(-5, 10**12),
    st.booleans(),
    st.none(),
    st.floats(allow_nan=False),
)


@settings(max_examples=300, deadline=None)
@given(
    raws=st.lists(_RAW_IDS, min_size=1, max_size=40),
    without_id=st.sets(st.integers(1, 39)),
    extra=st.sets(st.integers(0, 39), max_size=2),
)
def test_json_pupils_ids_in_bulk_are_each_pupil_s_by_the_id_rule(
    raws: list[object], without_id: set[int], extra: set[int]
) -> None:
    """Ids read over all pupils at once (and keys checked so) say what the id rule says of
    each pupil, at the first one that breaks it."""
    from app.core.errors import InvalidInput
    from app.tables import id_problem, students_to_matrix

    students: list[dict[str, object]] = [{"id": raw, "maths": 12, "info": 9.5} for raw in raws]
    for row in without_id & set(range(len(students))):
        del students[row]["id"]
    for row in extra & set(range(len(students))):
        students[row]["art"] = 1
    # Every pupil's keys are checked before any id is read.
    first_problem: tuple[int, str, str] | None = None
    misshapen = sorted((without_id | extra) & set(range(len(students))))
    if misshapen:
        row = misshapen[0]
        if row in extra:
            first_problem = (row, "art", "unknown column 'art'")
        else:
            first_problem = (row, "id", "either every pupil has an id or none has")
    for row, raw in enumerate(raws):
        if first_problem is not None:
            break
        if type(raw) not in (str, int):
            first_problem = (row, "id", "must be a string or an integer")
        elif (problem := id_problem(str(raw).strip())) is not None:
            first_problem = (row, "id", problem)
    if first_problem is None:
        table = students_to_matrix(students, ["maths", "info"], field="students")
        assert table.ids == [str(raw).strip() for raw in raws]
        assert table.values.tolist() == [[12.0, 9.5]] * len(raws)
        return
    with pytest.raises(InvalidInput) as refused:
        students_to_matrix(students, ["maths", "info"], field="students")
    row, key, problem = first_problem
    assert refused.value.errors[0]["loc"] == ["body", "students", row, key]
    assert problem in str(refused.value)


# Ids as a school's software may send them: spaces of every kind around or inside,
# integers, control characters, empty after stripping, too long.
_RAW_IDS = st.one_of(
    st.integers(-(10**20), 10**20),
    st.sampled_from([" n1", "n1 ", "\u00a0n2\u2003", "a b", "\t", "", "x" * 65, "é\u0085", "ok"]),
    st.text(max_size=70),
)


@settings(max_examples=500, deadline=None)
@given(raws=st.lists(_RAW_IDS, min_size=1, max_size=20))
def test_ids_read_in_bulk_are_those_read_one_by_one(raws: list[str | int]) -> None:
    """The bulk reader (a few calls over all ids, no strip when no id holds a space) gives
    what the per-id rule gives: every id stripped, or the 422 of the first invalid one."""
    one_by_one = [str(raw).strip() for raw in raws]
    problems = [i for i, ident in enumerate(one_by_one) if id_problem(ident) is not None]
    grades = {"maths": [10.0] * len(raws)}
    if problems:
        with pytest.raises(InvalidInput) as caught:
            columns_to_matrix(grades, list(raws), ["maths"])
        assert caught.value.errors[0]["loc"] == ["body", "ids", problems[0]]
    else:
        assert columns_to_matrix(grades, list(raws), ["maths"]).ids == one_by_one


_CELLS = st.one_of(
    st.integers(-(10**400), 10**400),
    st.floats(),
    st.booleans(),
    st.none(),
    st.sampled_from(["12", "Abs", "", "12,5"]),
)


@settings(max_examples=500, deadline=None)
@given(
    student=st.one_of(
        st.fixed_dictionaries(
            {"maths": _CELLS, "info": _CELLS}, optional={"id": st.one_of(_RAW_IDS, _CELLS)}
        ),
        st.dictionaries(
            st.sampled_from(["maths", "info", "id", "art"]),
            st.one_of(_CELLS, _RAW_IDS),
            max_size=4,
        ),
        st.lists(_CELLS, max_size=2),
        _CELLS,
    ),
    collect=st.booleans(),
)
def test_a_lone_pupil_read_in_a_few_calls_is_the_general_readers(
    student: object, collect: bool
) -> None:
    """The lone pupil's shortcut (`_one_pupil`, most /predict requests) gives the general
    reader's very table, or leaves the pupil to it."""
    from app.tables import json as json_tables

    columns = ["maths", "info"]
    with patch.object(json_tables, "_one_pupil", return_value=None):
        try:
            general = json_tables.students_to_matrix(
                [student], columns, field="students", accept_marks=True, collect_problems=collect
            )
        except InvalidInput:
            general = None
    quick = json_tables._one_pupil(student, columns)
    if quick is None:
        return
    assert general is not None
    assert quick.ids == general.ids
    assert quick.values.dtype == general.values.dtype
    assert np.array_equal(quick.values, general.values, equal_nan=True)
    assert (quick.groups, quick.marks, quick.problems) == (None, [], [])
    assert (general.groups, general.marks, general.problems) == (None, [], [])


def test_the_usual_lone_pupil_takes_the_shortcut() -> None:
    from app.tables.json import _one_pupil

    table = _one_pupil({"id": " n1", "maths": 13, "info": 14.5}, ["maths", "info"])
    assert table is not None
    assert table.ids == ["n1"]
    assert table.values.tolist() == [[13.0, 14.5]]
    assert _one_pupil({"maths": 13, "info": True}, ["maths", "info"]) is None
    assert _one_pupil({"id": 1, "maths": 13}, ["id", "maths"]) is None
