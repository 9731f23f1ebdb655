"""One unit of work: one transaction that commits when the work ends normally and rolls
back when it raises. Services never commit; whoever runs them does, once: an HTTP
request (:func:`app.http.request_scope.end_unit_of_work`) or a command of the command
line (:func:`unit_of_work`)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from sqlalchemy.orm import Session, sessionmaker


@contextlib.contextmanager
def unit_of_work(session_factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session whose work is committed when the ``with`` block ends, or rolled back
    (and the error raised on) when it raises; closed either way."""
    with session_factory() as session:
        try:
            yield session
        except BaseException:
            session.rollback()
            raise
        session.commit()
