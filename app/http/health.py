"""Liveness and readiness probes."""

from __future__ import annotations

import logging

import marshmallow as ma
from flask.views import MethodView
from flask_smorest import Blueprint
from sqlalchemy.exc import SQLAlchemyError

from app.database import check_database_ready
from app.http.edge import lock_free
from app.http.problems import PROBLEM_CONTENT_TYPE, ProblemSchema, problem_response
from app.http.request_scope import current_context
from app.outages import OUTAGES, DatabaseUnavailable, database_fault

logger = logging.getLogger(__name__)

blp = Blueprint("health", __name__, description="Liveness and readiness probes")

OK = "ok"


class HealthSchema(ma.Schema):
    status = ma.fields.String(required=True, metadata={"example": "ok"})


class ReadinessSchema(ma.Schema):
    status = ma.fields.String(required=True, metadata={"example": "ready"})
    checks = ma.fields.Dict(
        keys=ma.fields.String(),
        values=ma.fields.String(),
        required=True,
        metadata={"example": {"database": "ok", "hsm": "ok"}},
    )


class NotReadyProblemSchema(ProblemSchema):
    checks = ma.fields.Dict(
        keys=ma.fields.String(),
        values=ma.fields.String(),
        metadata={
            "description": "'ok' or the failing check's stable code",
            "example": {"database": "ok", "hsm": "HSM_PIN_INCORRECT"},
        },
    )


def _check_database() -> str:
    """A write in a rolled-back transaction on a fresh connection, and (SQLite) enough
    free space; the failing check's code otherwise. Logged once per outage."""
    context = current_context()
    min_free = context.settings.storage_min_free_mb * 1024 * 1024
    try:
        check_database_ready(context.probe_engine, context.clock(), min_free_bytes=min_free)
    except DatabaseUnavailable as exc:  # StorageFull too
        OUTAGES.failed("database", exc.message)
        return exc.code
    except SQLAlchemyError as exc:
        fault = database_fault(exc) or DatabaseUnavailable(
            f"the database is not usable ({type(exc).__name__})"
        )
        OUTAGES.failed("database", fault.message)
        return fault.code
    OUTAGES.recovered("database")
    if context.checkpointer is not None:  # a quiet moment to truncate the SQLite WAL
        context.checkpointer.maybe_checkpoint()
    return OK


def _check_hsm() -> str:
    # A real PKCS#11 round trip, cached briefly per process (ServiceContext.hsm_readiness).
    return current_context().hsm_readiness()


@blp.route("/healthz")
@lock_free  # answers while this process runs a slow request (app.http.edge)
class Liveness(MethodView):
    @blp.response(200, HealthSchema)
    def get(self) -> dict[str, str]:
        """The process is up (touches nothing else)."""
        return {"status": "ok"}


@blp.route("/readyz")
class Readiness(MethodView):
    @blp.response(200, ReadinessSchema)
    @blp.alt_response(
        503,
        schema=NotReadyProblemSchema,
        content_type=PROBLEM_CONTENT_TYPE,
        description="A dependency is not ready (code NOT_READY)",
    )
    def get(self) -> dict[str, object]:
        """The database takes a write (in a transaction rolled back) and, on SQLite,
        has room for more; the HSM token is present, logged in and holds the
        attribute authority's key (a real PKCS#11 round trip, reused for 1.5 s)."""
        checks = {"database": _check_database(), "hsm": _check_hsm()}
        if any(result != OK for result in checks.values()):
            # Returned, not raised: a failing probe is not logged per request (each
            # failing dependency logs its outage once).
            return problem_response(
                "NOT_READY",  # type: ignore[return-value]
                checks=checks,
            )
        return {"status": "ready", "checks": checks}
