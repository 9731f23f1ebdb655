"""Interactive API documentation: Swagger UI served from the installed package, no CDN."""

from __future__ import annotations

import json
from importlib.resources import files
from pathlib import Path

from flask import Blueprint, Response, render_template_string, send_from_directory, url_for

# flask-swagger-ui ships the Swagger UI 5 distribution (OpenAPI 3.1 aware).
SWAGGER_UI_DIST = Path(str(files("flask_swagger_ui") / "dist"))

blp = Blueprint("docs", __name__)

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>dairi API</title>
  <link rel="stylesheet" href="{{ asset('swagger-ui.css') }}">
  <link rel="icon" type="image/png" href="{{ asset('favicon-32x32.png') }}" sizes="32x32">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="{{ asset('swagger-ui-bundle.js') }}"></script>
  <script src="{{ asset('swagger-ui-standalone-preset.js') }}"></script>
  <script src="{{ url_for('docs.initializer') }}"></script>
</body>
</html>
"""

# A separate script rather than an inline one, so the policy below needs no inline
# script. validatorUrl null: no badge image fetched from validator.swagger.io.
_INITIALIZER = """window.onload = function () {
  window.ui = SwaggerUIBundle({
    url: %s,
    validatorUrl: null,
    dom_id: "#swagger-ui",
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
    layout: "StandaloneLayout"
  });
};
"""


# Everything the page loads is served from here. Swagger UI sets inline styles and its
# stylesheet draws icons as data: SVGs; nothing else is allowed, and no page may frame it.
CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data:",
    "connect-src 'self'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
])


@blp.after_request
def _content_security_policy(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    return response


def _asset(filename: str) -> str:
    return url_for("docs.asset", filename=filename)


@blp.get("/docs")
def index() -> str:
    return render_template_string(_PAGE, asset=_asset)


@blp.get("/docs/swagger-initializer.js")
def initializer() -> Response:
    spec_url = url_for("api-docs.openapi_json")
    return Response(_INITIALIZER % json.dumps(spec_url), mimetype="text/javascript")


@blp.get("/docs/assets/<path:filename>")
def asset(filename: str) -> Response:
    return send_from_directory(SWAGGER_UI_DIST, filename, max_age=86400)
