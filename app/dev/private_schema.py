"""A private PostgreSQL schema per test run or benchmark (development only)."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

from sqlalchemy import text
from sqlalchemy.engine import make_url

from app.database import make_engine


@contextlib.contextmanager
def private_schema(server_url: str, prefix: str = "test") -> Iterator[str]:
    """A PostgreSQL URL whose connections see only a fresh schema, dropped afterwards
    (tests and benchmarks share one server without seeing each other's tables)."""
    schema = f"{prefix}_{uuid.uuid4().hex[:16]}"
    admin = make_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        url = make_url(server_url).update_query_dict({"options": f"-csearch_path={schema}"})
        try:
            yield url.render_as_string(hide_password=False)
        finally:
            with admin.connect() as connection:
                connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    finally:
        admin.dispose()
