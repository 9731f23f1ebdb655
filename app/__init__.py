"""The dairi web service: the Flask application factory and its per-app services.

PKCS#11 is not touched here: the :class:`hsm.Hsm` is lazy and opens its session
on first use, after gunicorn has forked the worker.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from flask import Flask, current_app

from app import edge
from app.context import ServiceContext
from app.db import EXTENSION_KEY, close_session, get_session
from app.errors import ProblemError, register_error_handlers
from app.settings import Settings, load_settings
from hsm import Hsm

__all__ = ["ProblemError", "ServiceContext", "create_app", "current_context", "get_session"]


def current_context() -> ServiceContext:
    """The :class:`ServiceContext` of the application handling the current request."""
    context: ServiceContext = current_app.extensions[EXTENSION_KEY]
    return context


def _api_version() -> str:
    try:
        return version("dairi")
    except PackageNotFoundError:
        return "0+unknown"


def create_app(settings: Settings | None = None, *, hsm: Hsm | None = None) -> Flask:
    """Build the application.

    ``settings`` defaults to :func:`app.settings.load_settings`. ``hsm`` lets a
    caller share one :class:`hsm.Hsm` (one logged-in session per process)
    between several apps, as the tests do; by default the app makes its own.
    Does not migrate the database (see :func:`app.db.migrate`).
    """
    # Blueprints import current_context/get_session from this module.
    from app.api import DairiApi, register_blueprints
    from app.api.docs import blp as docs_blueprint

    settings = settings or load_settings()
    app = Flask(__name__)
    app.config.update(
        API_TITLE="dairi",
        API_VERSION=_api_version(),
        OPENAPI_VERSION="3.1.0",
        OPENAPI_URL_PREFIX="/",
        OPENAPI_JSON_PATH="openapi.json",
    )
    # First: bodies received within each endpoint's cap, security headers (app.edge).
    edge.install(app, https=settings.public_base_url.startswith("https://"))
    app.extensions[EXTENSION_KEY] = ServiceContext(settings, hsm=hsm)
    app.teardown_appcontext(close_session)
    if settings.trusted_proxy_hops:
        # Behind N trusted reverse proxies the client is the address the outermost
        # one saw: the N-th from the right of X-Forwarded-For (rate limits and the
        # audit log key on it). Without proxies the header is the client's to forge.
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=settings.trusted_proxy_hops)

    api = DairiApi(app)
    register_error_handlers(app)  # after the Api, so problem+json replaces its JSON errors
    register_blueprints(api)
    if settings.dev_mode:
        from app.api.pki import blp as pki_blueprint

        api.register_blueprint(pki_blueprint)
    app.register_blueprint(docs_blueprint)
    return app
