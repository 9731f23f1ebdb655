"""The per-request scope: the application's service context, the request's database
session and its unit of work.

One unit of work per request: services and views never commit. When the view has
answered, :func:`end_unit_of_work` commits the request's session if the answer is a
success (below 400), so every change lands together with the audit events that record
it, or, for any error answer, rolls it all back. A refusal (a 4xx answer) is then
recorded in the audit log in a transaction of its own
(:func:`app.audit_trail.log.record_refusal`), unless the code that refused has
recorded it already (:func:`refusal_recorded`): every refusal is audited, also those a
view or the request parser raises.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping

from flask import Response, current_app, g, request
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from app.audit_trail.log import record_refusal
from app.context import ServiceContext
from app.database import WalCheckpointer

# Where create_app keeps its ServiceContext in ``app.extensions``.
EXTENSION_KEY = "dairi"


def get_session() -> Session:
    """The current request's session, opened on first use.

    Nobody commits it but :func:`end_unit_of_work`; whatever is left uncommitted is
    rolled back when the application context ends (see :func:`close_session`).
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
        current_app.extensions.get(EXTENSION_KEY), "checkpointer", None
    )
    if checkpointer is not None:
        checkpointer.maybe_checkpoint()


def current_context() -> ServiceContext:
    """The :class:`ServiceContext` of the application handling the current request."""
    context: ServiceContext = current_app.extensions[EXTENSION_KEY]
    return context


# Set in ``g`` once the current request's refusal is in the audit log.
_REFUSAL_RECORDED = "_dairi_refusal_recorded"
# Per blueprint: the audit tag of each view's refusals, and the tag of the others.
_REFUSAL_TAGS: dict[str, tuple[str, Mapping[str, str]]] = {}


def refusal_recorded() -> None:
    """Say that this request's refusal has been written to the audit log (with its own
    tag), so :func:`end_unit_of_work` does not record it a second time."""
    g.setdefault(_REFUSAL_RECORDED, True)


def audit_refusals(
    blueprint_name: str, default_tag: str, tags: Mapping[str, str] | None = None
) -> None:
    """Record every refusal answered by the views of ``blueprint_name`` in the audit
    log: ``tags`` maps a view function's name to its tag, ``default_tag`` is the rest's."""
    _REFUSAL_TAGS[blueprint_name] = (default_tag, dict(tags or {}))


def _refusal_tag() -> str | None:
    if request.blueprint is None or request.blueprint not in _REFUSAL_TAGS:
        return None
    default, tags = _REFUSAL_TAGS[request.blueprint]
    view = (request.endpoint or "").rpartition(".")[2]
    return tags.get(view, default)


def _problem_code(response: Response) -> str:
    try:
        body = json.loads(response.get_data()) if response.is_json else None
    except ValueError:
        body = None
    code = body.get("code") if isinstance(body, dict) else None
    return code if isinstance(code, str) else f"HTTP_{response.status_code}"


def end_unit_of_work(response: Response) -> Response:
    """``after_request``: commit the request's work if it succeeded, else roll it back
    and, for a refusal (4xx) nobody recorded yet, record it in the audit log.

    A commit that fails raises, so the client is told of the failure (503/500), never
    of a success that was not stored.
    """
    session: Session | None = g.get("_dairi_session")
    if response.status_code < 400:
        if session is not None:
            session.commit()
        return response
    if session is not None:
        # Before anything else writes: on SQLite the request's transaction holds the
        # write lock (BEGIN IMMEDIATE) that the refusal's own transaction needs.
        session.rollback()
    if response.status_code < 500 and not g.get(_REFUSAL_RECORDED):
        tag = _refusal_tag()
        if tag is not None:
            caller = g.get("dairi_caller")
            record_refusal(
                current_context().session_factory,
                tag,
                actor=caller.actor if caller is not None else "anonymous",
                code=_problem_code(response),
                details={"method": request.method, "path": request.path},
            )
            refusal_recorded()
    return response
