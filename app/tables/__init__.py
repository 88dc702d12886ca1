"""Tables of pupils' grades as they come in and go out: CSV the way French school software
and spreadsheets write it, JSON checked column by column, and the rules every table obeys
(column names, pupils' ids, grades inside the range).

Errors: `TableError` (CSV reading, 1-based data rows) has one translation, `csv_error`; the
JSON and grade checks raise the service's `InvalidInput` naming pupil and column.
"""

from app.tables.checks import (
    all_grades,
    check_grade_range,
    check_grades,
    column_stats,
    grade_problems,
)
from app.tables.csv import (
    DELIMITERS,
    CellProblem,
    Columns,
    GradeTable,
    detect_dialect,
    read_grade_csv,
    read_grade_csv_fast,
)
from app.tables.csv_out import Verbatim, spreadsheet_safe, write_csv
from app.tables.errors import TableError, TooManyRowsError, csv_error
from app.tables.ids import (
    ID_PATTERN,
    MAX_GROUP_LENGTH,
    MAX_ID_LENGTH,
    PSEUDONYM_PREFIX,
    find_duplicate,
    first_bad_id,
    id_problem,
    pseudonymise,
)
from app.tables.json import (
    PupilTable,
    columns_to_matrix,
    load_json_object,
    parse_envelope,
    students_to_matrix,
    typed_columns,
    typed_students,
)
from app.tables.marks import SPECIAL_MARKS, Mark, ResolvedMarks, SpecialMarks, resolve_marks
from app.tables.names import (
    API_NAME_PATTERN,
    ID_NAME,
    check_api_names,
    feature_key,
    likely_name,
    unknown_name_message,
)

__all__ = [
    "API_NAME_PATTERN",
    "DELIMITERS",
    "ID_NAME",
    "ID_PATTERN",
    "MAX_GROUP_LENGTH",
    "MAX_ID_LENGTH",
    "PSEUDONYM_PREFIX",
    "SPECIAL_MARKS",
    "CellProblem",
    "Columns",
    "GradeTable",
    "Mark",
    "PupilTable",
    "ResolvedMarks",
    "SpecialMarks",
    "TableError",
    "TooManyRowsError",
    "Verbatim",
    "all_grades",
    "check_api_names",
    "check_grade_range",
    "check_grades",
    "column_stats",
    "columns_to_matrix",
    "csv_error",
    "detect_dialect",
    "feature_key",
    "find_duplicate",
    "first_bad_id",
    "grade_problems",
    "id_problem",
    "likely_name",
    "load_json_object",
    "parse_envelope",
    "pseudonymise",
    "read_grade_csv",
    "read_grade_csv_fast",
    "resolve_marks",
    "spreadsheet_safe",
    "students_to_matrix",
    "typed_columns",
    "typed_students",
    "unknown_name_message",
    "write_csv",
]
