"""One unit of work: one transaction that commits when the work ends normally and rolls
back when it raises. Services never commit; whoever runs them does, once: an HTTP
request (:func:`app.http.request_scope.end_unit_of_work`) or a command of the command
line (:func:`unit_of_work`).

The one exception that writes is :func:`separate_transaction`: a write that must
stand although the request is then refused and rolled back (a spent challenge, a
counted attempt). Besides the two above, it and :func:`app.http.security.end_reads`
(which commits the request's credentials check before the view runs, and only when
that transaction has read and not written) are the only places that commit."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from sqlalchemy import event
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, SessionTransaction, sessionmaker

from app.database import TRANSACTION_WROTE


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


# Set in ``session.info`` while the session's transaction holds writes (flushed or not).
_WROTE = TRANSACTION_WROTE


class UnitOfWorkInterleaved(RuntimeError):
    """:func:`separate_transaction` was entered after the unit of work had written:
    committing then would store half of the request's work. A programming error."""


@event.listens_for(Session, "after_flush")
def _flushed(session: Session, _flush_context: Any) -> None:
    session.info[_WROTE] = True


@event.listens_for(Session, "do_orm_execute")
def _executed(state: Any) -> None:
    if state.is_insert or state.is_update or state.is_delete:
        state.session.info[_WROTE] = True


@event.listens_for(Session, "after_transaction_end")
def _ended(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:
        session.info.pop(_WROTE, None)


def has_written(session: Session) -> bool:
    """Whether the session's current transaction holds a write, pending or flushed."""
    return bool(session.new or session.dirty or session.deleted or session.info.get(_WROTE))


@contextlib.contextmanager
def separate_transaction(session: Session) -> Iterator[Session]:
    """Run the block in a transaction of its own on ``session`` and commit it however
    the block ends, also when it raises a refusal (raised on after the commit; a
    database error rolls it back instead).

    For the few writes that must stand whatever the request's answer, because the
    refusal that may follow rolls the request back: a challenge spent by its first
    answer (else a refused answer could be replayed), a rate-limit hit of a refused
    request (else a flood costs nothing), a person marked ``reenroll-required`` or a
    token ended because its certificate was revoked (recorded once, when found).
    Refusals themselves are recorded by :func:`app.audit_trail.log.record_refusal`.

    It must come before the unit of work writes anything: the transaction so far (reads
    only) is committed first, which on SQLite also releases the write lock ``BEGIN
    IMMEDIATE`` took. Raises :class:`UnitOfWorkInterleaved` if the session holds a write
    already, rather than commit half of the request's work. The same session, not a
    second one: on SQLite a second would wait for the lock this one may hold.
    """
    if has_written(session):
        raise UnitOfWorkInterleaved(
            "a separate transaction cannot start after the unit "
            "of work has written; it would commit that too"
        )
    session.commit()
    try:
        yield session
    except SQLAlchemyError:
        session.rollback()  # the database refused the write itself: nothing to keep
        raise
    except BaseException:
        session.commit()  # a refusal decided inside the block: what it wrote stands
        raise
    session.commit()
