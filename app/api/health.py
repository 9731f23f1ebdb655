"""Liveness and readiness probes."""

from __future__ import annotations

import logging

import marshmallow as ma
from flask.views import MethodView
from flask_smorest import Blueprint
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from app import current_context
from app.errors import PROBLEM_CONTENT_TYPE, ProblemError, ProblemSchema

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
    try:
        with current_context().engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except SQLAlchemyError:
        logger.warning("readiness: database check failed", exc_info=True)
        return "DATABASE_UNAVAILABLE"
    return OK


def _check_hsm() -> str:
    # A real PKCS#11 round trip, cached briefly per process (ServiceContext.hsm_readiness).
    return current_context().hsm_readiness()


@blp.route("/healthz")
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
        """The database answers and the HSM token is present, logged in and holds the
        attribute authority's key (a real PKCS#11 round trip, reused for 1.5 s)."""
        checks = {"database": _check_database(), "hsm": _check_hsm()}
        if any(result != OK for result in checks.values()):
            raise ProblemError(503, "NOT_READY", "Service not ready", checks=checks)
        return {"status": "ready", "checks": checks}
