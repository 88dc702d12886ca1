"""The one error of table reading, and its one translation into a 422."""

from app.core.errors import InvalidInput


class TableError(ValueError):
    """Bad input; `row` is the 1-based data row (header is row 0), `column` the header as
    given; `parameter` the query parameter at fault when it is one (`features`, ...)."""

    def __init__(
        self,
        message: str,
        *,
        row: int | None = None,
        column: str | None = None,
        parameter: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.row = row
        self.column = column
        self.parameter = parameter


class TooManyRowsError(TableError):
    """The table has more data rows than the caller accepts; raised before reading the rest."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the table has more than {limit} rows", row=limit + 1)
        self.limit = limit


def csv_error(exc: TableError) -> InvalidInput:
    """A CSV body's TableError as a 422: ``loc`` is ``["body", "csv", row, column]``."""
    if exc.parameter is not None:
        return InvalidInput(f"CSV: {exc.message}", loc=["query", exc.parameter])
    # The reader's message already names the row and the column.
    loc: list[str | int] = ["body", "csv"]
    if exc.row is not None:
        loc.append(exc.row)
    if exc.column is not None:
        loc.append(exc.column)
    return InvalidInput(f"CSV: {exc.message}", loc=loc)
