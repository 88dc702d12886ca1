"""Pages of a query: the rows of one page and the total count, for ``{data, count}`` lists."""

from typing import Any, TypeVar

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

T = TypeVar("T")


def paginate(
    session: Session, query: Select[T], *order_by: Any, limit: int, offset: int
) -> tuple[list[T], int]:
    total = session.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
    page = session.scalars(query.order_by(*order_by).limit(limit).offset(offset))
    return list(page), int(total or 0)
