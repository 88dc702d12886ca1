"""Tables of pupils' grades as they come in and go out: CSV the way French school software
and spreadsheets write it, JSON checked column by column, and the rules every table obeys
(column names, pupils' ids, grades inside the range).

Errors: `TableError` (CSV reading, 1-based data rows) has one translation, `csv_error`; the
JSON and grade checks raise the service's `InvalidInput` naming pupil and column.
"""

from app.tables.checks import check_grade_range, check_grades, column_stats
from app.tables.csv import (
    DELIMITERS,
    GradeTable,
    detect_dialect,
    read_grade_csv,
    read_grade_csv_fast,
    spreadsheet_safe,
    write_csv,
)
from app.tables.errors import TableError, TooManyRowsError, csv_error
from app.tables.ids import MAX_ID_LENGTH, find_duplicate, first_bad_id, id_problem
from app.tables.json import load_json_object, parse_envelope, students_to_matrix
from app.tables.names import API_NAME_PATTERN, ID_NAME, check_api_names, feature_key

__all__ = [
    "API_NAME_PATTERN",
    "DELIMITERS",
    "ID_NAME",
    "MAX_ID_LENGTH",
    "GradeTable",
    "TableError",
    "TooManyRowsError",
    "check_api_names",
    "check_grade_range",
    "check_grades",
    "column_stats",
    "csv_error",
    "detect_dialect",
    "feature_key",
    "find_duplicate",
    "first_bad_id",
    "id_problem",
    "load_json_object",
    "parse_envelope",
    "read_grade_csv",
    "read_grade_csv_fast",
    "spreadsheet_safe",
    "students_to_matrix",
    "write_csv",
]
