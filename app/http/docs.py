"""Interactive API documentation: Swagger UI served from the installed package, no CDN."""

from __future__ import annotations

import json
from importlib.resources import files
from pathlib import Path

from flask import Blueprint, Response, render_template_string, send_from_directory, url_for

from dairi.problems import CATALOGUE

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
  <p style="font-family: sans-serif; margin: 0.5em 1em">
    <a href="{{ url_for('docs.problems') }}">Error codes</a></p>
  <div id="swagger-ui"></div>
  <script src="{{ asset('swagger-ui-bundle.js') }}"></script>
  <script src="{{ asset('swagger-ui-standalone-preset.js') }}"></script>
  <script src="{{ url_for('docs.initializer') }}"></script>
</body>
</html>
"""

# The error catalogue for people: each code's row is the anchor its problem ``type``
# (GET /api/v1/problems/<code>) leads a browser to.
_PROBLEMS_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>dairi error codes</title>
  <style>
    body { font-family: sans-serif; margin: 1em 2em; }
    table { border-collapse: collapse; }
    th, td { border-bottom: 1px solid #ccc; padding: 0.3em 0.8em; text-align: left; }
    tr:target { background: #ffd; }
    code { font-size: 1.05em; }
  </style>
</head>
<body>
  <h1>dairi error codes</h1>
  <p>Every error is an RFC 9457 <code>application/problem+json</code> document whose
  <code>code</code> is one of these and whose <code>type</code> is the code's entry in
  <a href="{{ url_for('problems.list_problems') }}">/api/v1/problems</a>. A 429 or 503
  carries <code>Retry-After</code>. <a href="{{ url_for('docs.index') }}">API documentation</a></p>
  <table>
    <thead><tr><th>code</th><th>status</th><th>title</th><th>description</th></tr></thead>
    <tbody>
    {%- for entry in entries %}
      <tr id="{{ entry.code }}"><td><code>{{ entry.code }}</code></td><td>{{ entry.status }}</td>
        <td>{{ entry.title }}</td><td>{{ entry.description }}</td></tr>
    {%- endfor %}
    </tbody>
  </table>
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
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
)


@blp.after_request
def _content_security_policy(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    return response


def _asset(filename: str) -> str:
    return url_for("docs.asset", filename=filename)


@blp.get("/docs")
def index() -> str:
    return render_template_string(_PAGE, asset=_asset)


@blp.get("/docs/problems")
def problems() -> str:
    entries = [CATALOGUE[code] for code in sorted(CATALOGUE)]
    return render_template_string(_PROBLEMS_PAGE, entries=entries)


@blp.get("/docs/swagger-initializer.js")
def initializer() -> Response:
    spec_url = url_for("api-docs.openapi_json")
    return Response(_INITIALIZER % json.dumps(spec_url), mimetype="text/javascript")


@blp.get("/docs/assets/<path:filename>")
def asset(filename: str) -> Response:
    return send_from_directory(SWAGGER_UI_DIST, filename, max_age=86400)
