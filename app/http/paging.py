"""One page of a listing (``PageArgs``), cut and counted by the database."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session


def page_of(session: Session, query: Select[Any], args: dict[str, Any]) -> dict[str, Any]:
    """``items`` (the page's rows of ``query``, which must be ordered), ``page``,
    ``page_size`` and ``total`` (every row ``query`` matches)."""
    size = args["page_size"]
    total = session.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
    items = session.scalars(query.limit(size).offset((args["page"] - 1) * size)).all()
    return {"items": items, "page": args["page"], "page_size": size, "total": total or 0}
