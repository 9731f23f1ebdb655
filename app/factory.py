"""The Flask application factory.

PKCS#11 is not touched here: the :class:`hsm.Hsm` is lazy and opens its session
on first use, after gunicorn has forked the worker.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from flask import Flask

from app.console.views import blp as console_blueprint
from app.context import ServiceContext
from app.http import edge
from app.http.api import DairiApi, register_blueprints
from app.http.docs import blp as docs_blueprint
from app.http.problems import register_error_handlers
from app.http.request_scope import EXTENSION_KEY, close_session, end_unit_of_work
from app.settings import Settings, load_settings
from hsm import Hsm


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
    Does not migrate the database (see :func:`app.migrate.migrate`).
    """
    settings = settings or load_settings()
    app = Flask(__name__)
    app.config.update(
        API_TITLE="dairi",
        API_VERSION=_api_version(),
        OPENAPI_VERSION="3.1.0",
        OPENAPI_URL_PREFIX="/",
        OPENAPI_JSON_PATH="openapi.json",
    )
    # First: bodies received within each endpoint's cap, security headers (app.http.edge).
    edge.install(app, https=settings.public_base_url.startswith("https://"))
    app.extensions[EXTENSION_KEY] = ServiceContext(settings, hsm=hsm)
    app.teardown_appcontext(close_session)
    app.after_request(end_unit_of_work)  # one unit of work per request: commit or roll back
    if settings.trusted_proxy_hops:
        # Behind N trusted reverse proxies the client is the address the outermost
        # one saw: the N-th from the right of X-Forwarded-For (rate limits and the
        # audit log key on it). Without proxies the header is the client's to forge.
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=settings.trusted_proxy_hops
        )

    api = DairiApi(app)
    register_error_handlers(app)  # after the Api, so problem+json replaces its JSON errors
    register_blueprints(api)
    if settings.dev_mode:
        from app.dev.pki_views import blp as pki_blueprint

        api.register_blueprint(pki_blueprint)
    app.register_blueprint(docs_blueprint)
    app.register_blueprint(console_blueprint)
    return app
