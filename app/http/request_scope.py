"""The per-request scope: the application's service context and the request's database session."""

from __future__ import annotations

import contextlib

from flask import current_app, g
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from app.context import ServiceContext
from app.database import WalCheckpointer

# Where create_app keeps its ServiceContext in ``app.extensions``.
EXTENSION_KEY = "dairi"


def get_session() -> Session:
    """The current request's session, opened on first use.

    Services commit explicitly; whatever is left uncommitted is rolled back when
    the application context ends (see :func:`close_session`).
    """
    session: Session | None = g.get("_dairi_session")
    if session is None:
        session = current_app.extensions[EXTENSION_KEY].session_factory()
        g._dairi_session = session
    return session


def close_session(exc: BaseException | None = None) -> None:
    """Teardown: roll back anything uncommitted and close the request's session, then
    let the WAL checkpointer run if it is due. Never raises: the request has been
    answered, and a database that fails here was reported where it failed."""
    session: Session | None = g.pop("_dairi_session", None)
    if session is not None:
        try:
            session.rollback()
            session.close()
        except SQLAlchemyError:
            # A dead or broken connection: the pool discards it; nothing was pending.
            with contextlib.suppress(SQLAlchemyError):
                session.invalidate()
    checkpointer: WalCheckpointer | None = getattr(
        current_app.extensions.get(EXTENSION_KEY), "checkpointer", None)
    if checkpointer is not None:
        checkpointer.maybe_checkpoint()


def current_context() -> ServiceContext:
    """The :class:`ServiceContext` of the application handling the current request."""
    context: ServiceContext = current_app.extensions[EXTENSION_KEY]
    return context
