"""The HTTP API: flask-smorest's Api, documenting errors as problem+json, and its blueprints."""

from __future__ import annotations

import http

from flask_smorest import Api
from flask_smorest.utils import prepare_response

from app.audit_trail import views as audit_trail
from app.console import api as console_sign_in
from app.credentials import views as credentials
from app.csc import views as csc
from app.http import catalogue, health
from app.http.problems import PROBLEM_CONTENT_TYPE, ProblemSchema
from app.http.security import declare_security_schemes
from app.mandates import views as mandates
from app.people import sign_in_views as auth
from app.people import views as people
from app.signing_sessions import views as signing_sessions
from app.verification import views as verifications

# Every API blueprint, in registration order; add new ones here.
BLUEPRINTS = (
    health.blp,
    catalogue.blp,
    auth.blp,
    console_sign_in.blp,
    people.blp,
    mandates.blp,
    mandates.ac_blp,
    audit_trail.blp,
    credentials.blp,
    signing_sessions.blp,
    verifications.blp,
    csc.v2,
    csc.v1,
)


class DairiApi(Api):
    """flask-smorest's Api whose documented error responses are RFC 9457 problems.

    The handlers themselves are installed by :func:`app.http.problems.register_error_handlers`.
    """

    ERROR_SCHEMA = ProblemSchema

    def _register_responses(self) -> None:
        # flask-smorest documents its error responses as application/json; ours are
        # application/problem+json (same loop as flask-smorest's, other content type).
        for status in http.HTTPStatus:
            response: dict[str, object] = {"description": status.phrase}
            if not (100 <= status < 200) and status not in (204, 304):
                response["schema"] = self.ERROR_SCHEMA
            prepare_response(response, self.spec, PROBLEM_CONTENT_TYPE)
            self.spec.components.response(status.name, response, lazy=True)
        response = {"description": "Default error response", "schema": self.ERROR_SCHEMA}
        prepare_response(response, self.spec, PROBLEM_CONTENT_TYPE)
        self.spec.components.response(self.DEFAULT_ERROR_RESPONSE_NAME, response, lazy=True)


def register_blueprints(api: Api) -> None:
    """Register every blueprint in :data:`BLUEPRINTS` with the Api, after the security
    schemes their operations name."""
    declare_security_schemes(api)
    for blueprint in BLUEPRINTS:
        api.register_blueprint(blueprint)
