"""The HTTP edge every request passes: its body is received within the endpoint's cap
before the application runs, requests run one at a time per process when the server
asks for it, and every response carries the security headers.

Body caps (issue 9.11). Each endpoint accepts a body of at most
:data:`DEFAULT_BODY_BYTES` (JSON) unless its view declares another cap with
:func:`body_limit`. The cap holds for any transfer encoding: at most cap + 1 bytes
are read from the server's input stream, whether the client sent
``Content-Length`` or a chunked body, and a larger body is a 413
``PAYLOAD_TOO_LARGE``. (werkzeug's ``max_content_length`` does not do this for a
chunked body: its limited stream stops reading at the limit and hands the view a
truncated body without an error.) The body is then served to the view from memory.

One request at a time (issue 9.6). The served process reads requests with many
threads so that slow clients hold a thread, not the application; the application
itself keeps DESIGN §3's process model (one PKCS#11 session, asn1crypto objects
not shared between threads at once). The server passes a lock in the WSGI
environment (:data:`SERIALISE_KEY`, see ``app.serving.gunicorn_conf``); the whole
request is handled under it, after its body has been received. A view that
touches no shared state may say so with :func:`lock_free` and run beside it (the
liveness probe answers while a slow request runs). The test client passes no
lock, so tests may still race requests against one another.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from typing import Any, TypeVar

from flask import Flask, Response, current_app, request
from werkzeug.exceptions import HTTPException

from app.http.problems import ProblemError

# Login, enrolment, grant and administration bodies: certificates, signatures and
# a signed instruction fit easily. Binary uploads (documents to sign) declare their own.
DEFAULT_BODY_BYTES = 64 * 1024
SERIALISE_KEY = "dairi.serialise"
_REFUSAL_KEY = "dairi.body_refusal"
_CAP_ATTRIBUTE = "dairi_max_body_bytes"
_LOCK_FREE_ATTRIBUTE = "dairi_lock_free"
_READ_CHUNK = 64 * 1024
# A year; not includeSubDomains: that is a decision for the whole domain, not this service.
HSTS = "max-age=31536000"

View = TypeVar("View", bound=Callable[..., Any])
StartResponse = Callable[..., Any]


def body_limit(max_bytes: int) -> Callable[[View], View]:
    """Declare the largest request body ``view`` accepts, in bytes (put it under the
    route decorators). Without it an endpoint accepts :data:`DEFAULT_BODY_BYTES`."""

    def declare(view: View) -> View:
        setattr(view, _CAP_ATTRIBUTE, max_bytes)
        return view

    return declare


def lock_free(view: View) -> View:
    """Declare that ``view`` (a function or a MethodView class) touches no state shared
    between requests, so it need not wait for the request the process is running."""
    setattr(view, _LOCK_FREE_ATTRIBUTE, True)
    return view


def _declared(view: Any, attribute: str) -> Any:
    found = getattr(view, attribute, None)
    if found is None:  # class-based views declare on the class
        found = getattr(getattr(view, "view_class", None), attribute, None)
    return found


class BodyReceiver:
    """WSGI middleware around the Flask application: receives the body within the
    endpoint's cap (see the module docstring), then runs the request, under the
    server's lock if it passed one."""

    def __init__(
        self, app: Flask, wsgi_app: Callable[[dict[str, Any], StartResponse], Iterable[bytes]]
    ) -> None:
        self.app = app
        self.wsgi_app = wsgi_app

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        view = self._view(environ)
        cap = _declared(view, _CAP_ATTRIBUTE)
        refusal = self._receive(environ, DEFAULT_BODY_BYTES if cap is None else int(cap))
        if refusal is not None:
            environ[_REFUSAL_KEY] = refusal
        lock: AbstractContextManager[Any] | None = environ.get(SERIALISE_KEY)
        if lock is None or _declared(view, _LOCK_FREE_ATTRIBUTE):
            return self.wsgi_app(environ, start_response)
        with lock:
            return self.wsgi_app(environ, start_response)

    def _view(self, environ: dict[str, Any]) -> Any:
        """The view ``environ`` is routed to, or None (Flask answers that request)."""
        try:
            endpoint, _ = self.app.url_map.bind_to_environ(environ).match()
        except HTTPException:  # not found, wrong method, redirect
            return None
        return self.app.view_functions.get(str(endpoint))

    def _receive(self, environ: dict[str, Any], cap: int) -> ProblemError | None:
        """Replace ``wsgi.input`` by the received body; a problem if it cannot be."""
        chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
        length = None if chunked else _content_length(environ)
        too_large = ProblemError(
            "PAYLOAD_TOO_LARGE", detail=f"this endpoint accepts bodies of at most {cap} bytes"
        )
        if length is not None and length > cap:
            return too_large  # refused without reading a byte
        if length is None and not environ.get("wsgi.input_terminated"):
            body = b""  # no length and no end of stream guaranteed: nothing is safe to read
        else:
            want = cap + 1 if length is None else length
            try:
                body = _read_at_most(environ["wsgi.input"], want)
            except TimeoutError:
                return ProblemError(
                    "REQUEST_TIMEOUT", detail="the request body did not arrive in time"
                )
            except Exception:
                # The server's stream raises its own errors (a malformed chunk size, a
                # client gone): the body is unusable either way.
                return ProblemError("BODY_UNREADABLE", detail="the request body could not be read")
            if len(body) > cap:
                return too_large
            if length is not None and len(body) < length:
                return ProblemError(
                    "BODY_UNREADABLE", detail="the request body ended before its Content-Length"
                )
        environ["wsgi.input"] = io.BytesIO(body)
        environ["wsgi.input_terminated"] = True
        return None


def _content_length(environ: dict[str, Any]) -> int | None:
    value = environ.get("CONTENT_LENGTH", "")
    try:
        return max(0, int(value)) if value else None
    except ValueError:
        return None


def _read_at_most(stream: io.RawIOBase | Any, limit: int) -> bytes:
    """Up to ``limit`` bytes from ``stream``; never asks it for more than that."""
    parts: list[bytes] = []
    received = 0
    while received < limit:
        data = stream.read(min(_READ_CHUNK, limit - received))
        if not data:
            break
        parts.append(data)
        received += len(data)
    return b"".join(parts)


def _refuse_unreceived_body() -> None:
    refusal: ProblemError | None = request.environ.get(_REFUSAL_KEY)
    if refusal is not None:
        raise refusal


def _security_headers(response: Response) -> Response:
    headers = response.headers
    headers["X-Content-Type-Options"] = "nosniff"
    # API answers may carry tokens, invitation codes, client secrets or personal
    # data: never stored by a browser or a shared cache, unless a view said otherwise.
    if request.path.startswith("/api/") and "Cache-Control" not in headers:
        headers["Cache-Control"] = "no-store"
    if current_app.config["DAIRI_HSTS"]:
        headers["Strict-Transport-Security"] = HSTS
    return response


def install(app: Flask, *, https: bool) -> None:
    """Put the edge in front of ``app``: call before any other request hook is added,
    so that a refused body is answered before anything else runs. ``https``: the
    service's public URL is https, so responses carry HSTS."""
    app.config["DAIRI_HSTS"] = https
    app.wsgi_app = BodyReceiver(app, app.wsgi_app)  # type: ignore[method-assign]
    app.before_request(_refuse_unreceived_body)
    app.after_request(_security_headers)
