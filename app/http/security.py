"""Who is calling, and may they: bearer tokens (people and representatives),
HTTP Basic client credentials (relying parties), and the :func:`allow` decorator
that states, per endpoint, which roles and client scopes may call it.

A refusal is a 401 (no or bad credentials) or 403 (not allowed) problem, and is
recorded in the audit log.
"""

from __future__ import annotations

import base64
import binascii
import copy
import functools
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from flask import g, request
from flask_smorest import Api

from app.audit_trail.log import append_refusal
from app.database import read_only_transaction
from app.http.problems import ProblemError
from app.http.ratelimit import RateLimited, client_address, enforce
from app.http.request_scope import current_context, get_session, refusal_recorded
from app.people.caller import Access, Caller, CallerKind, LiveToken, permits
from app.people.models import GLOBAL_ROLES, Role
from app.people.sign_in import AuthError, AuthService, roles_of
from app.unit_of_work import has_written, separate_transaction
from identity.corporate_number import validate_corporate_number

F = TypeVar("F", bound=Callable[..., Any])

# Client scopes: what a relying party may read.
SCOPES = ("employees:read", "mandates:read", "authority:read", "signatures:verify", "audit:read")


# Refused authentication attempts are counted per minute.
REFUSED_ATTEMPT_WINDOW_SECONDS = 60


def record_refused_attempt(
    tag: str,
    code: str,
    *,
    actor: str = "anonymous",
    subject: str | None = None,
    keys: Iterable[str] = (),
    details: dict[str, Any] | None = None,
) -> RateLimited | None:
    """Count a refused authentication attempt against the client's address and
    ``keys`` (e.g. the certificate presented), then record it in the audit log
    (aggregated, :func:`app.audit_trail.log.append_refusal`): one transaction of the
    request's session, rolled back first, so nothing of the refused request stays.

    The limit is counted before anything else is written. Over
    ``refused_auth_rate_per_minute`` the attempt is recorded as ``RATE_LIMITED``
    and that error is returned, for the caller to raise instead of the refusal.
    """
    context = current_context()
    session = get_session()
    # The request's transaction holds SQLite's write lock once begun: end it first.
    session.rollback()
    limited: RateLimited | None = None
    with separate_transaction(session):
        try:
            enforce(
                session,
                [
                    f"auth-refused:address:{client_address()}",
                    *(f"auth-refused:{key}" for key in keys),
                ],
                limit=context.settings.refused_auth_rate_per_minute,
                window_seconds=REFUSED_ATTEMPT_WINDOW_SECONDS,
                now=context.clock(),
                what="refused authentication attempts",
            )
        except RateLimited as exc:
            limited = exc
        append_refusal(
            session,
            tag,
            actor=actor,
            code=limited.code if limited else code,
            subject=subject,
            details=details,
        )
    refusal_recorded()
    return limited


def _refuse(
    status: int, code: str, detail: str, *, actor: str = "anonymous", **extra: Any
) -> ProblemError:
    """Record an access refusal; a 401 is a refused authentication attempt and
    may come back as 429 ``RATE_LIMITED`` (see :func:`record_refused_attempt`)."""
    details = {"method": request.method, "path": request.path}
    if status == 401:
        limited = record_refused_attempt("auth:access:refused", code, actor=actor, details=details)
        if limited is not None:
            return ProblemError(
                limited.code,
                detail=limited.message,
                headers={"Retry-After": str(limited.retry_after)},
            )
    else:
        session = get_session()
        session.rollback()  # as above: end the request's transaction first
        with separate_transaction(session):
            append_refusal(session, "auth:access:refused", actor=actor, code=code, details=details)
        refusal_recorded()
    headers = {"WWW-Authenticate": 'Bearer realm="dairi"'} if status == 401 else None
    return ProblemError(code, detail=detail, headers=headers, **extra)


def authenticate() -> Caller | None:
    """The caller of this request, or None without credentials; cached in ``g``.

    Raises a 401 problem for credentials that do not hold.
    """
    if "dairi_caller" in g:
        return g.dairi_caller
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    caller: Caller | None = None
    if header:
        context = current_context()
        session = get_session()
        # Checking credentials only reads: on SQLite it takes no write lock.
        read_only_transaction(session)
        service = AuthService(
            session, context.settings, context.certificate_validator, context.clock
        )
        try:
            if scheme.lower() == "bearer" and value:
                caller = token_caller(session, service.token(value.strip()))
            elif scheme.lower() == "basic" and value:
                client_id, secret = _basic(value)
                client = service.client(client_id, secret)
                caller = Caller(
                    CallerKind.CLIENT,
                    client.client_id,
                    client.name,
                    scopes=frozenset(client.scopes.split()),
                    client_of=frozenset(client.corporate_numbers),
                    all_corporations=client.all_corporations,
                )
            else:
                raise AuthError("use a Bearer token or Basic client credentials", "UNAUTHENTICATED")
        except AuthError as exc:
            raise _refuse(401, exc.code, exc.message) from None
        end_reads(session)
    g.dairi_caller = caller
    return caller


def end_reads(session: Any) -> None:
    """End the request's transaction if it has only read (the caller's credentials),
    before the view's own work begins.

    On a SQLite file a transaction takes the write lock (``BEGIN IMMEDIATE``, see
    :func:`app.database.make_engine`) unless begun read-only, as the credentials check
    is (:func:`app.database.read_only_transaction`). Either way its view must not run
    inside it: an IMMEDIATE one held the lock through the whole view (eight
    concurrent verifications, which write nothing, held it ~85% of the time and
    queued every writer behind them, up to the busy time-out: 503
    ``DATABASE_UNAVAILABLE``), and a deferred one must not write. Committed, not
    rolled back, so the token and caller stay loaded (``expire_on_commit=False``); a
    view that reads or writes begins a transaction of its own (IMMEDIATE, a critical
    section as before). Nothing written is committed here: a session holding a
    write is left alone.
    """
    if session.in_transaction() and not has_written(session):
        session.commit()


def _basic(value: str) -> tuple[str, str]:
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise AuthError("malformed Basic credentials", "CLIENT_CREDENTIALS_INVALID") from exc
    client_id, sep, secret = decoded.partition(":")
    if not sep or "\x00" in decoded:  # no NUL: PostgreSQL could not even compare it
        raise AuthError("malformed Basic credentials", "CLIENT_CREDENTIALS_INVALID")
    return client_id, secret


def token_caller(session: Any, token: LiveToken) -> Caller:
    roles, employers, represented = roles_of(session, token)
    if token.person_id is not None:
        return Caller(CallerKind.PERSON, token.person_id, token.name, roles, employers, token=token)
    return Caller(
        CallerKind.REPRESENTATIVE, token.id, token.name, representative_of=represented, token=token
    )


BEARER_SCHEME = "bearerAuth"
BASIC_SCHEME = "basicAuth"
# How callers authenticate, as the OpenAPI document declares it (components.securitySchemes).
SECURITY_SCHEMES: dict[str, dict[str, str]] = {
    BEARER_SCHEME: {
        "type": "http",
        "scheme": "bearer",
        "description": "A person's or representative's access token (dairi_at_…), from "
        "POST /api/v1/auth/challenges/{challenge_id}/response",
    },
    BASIC_SCHEME: {
        "type": "http",
        "scheme": "basic",
        "description": "An API client's client_id and client_secret (registered by an "
        "administrator with POST /api/v1/clients)",
    },
}


def declare_security_schemes(api: Api) -> None:
    """Add :data:`SECURITY_SCHEMES` to ``api``'s OpenAPI document; :func:`allow` names
    them per operation."""
    for name, scheme in SECURITY_SCHEMES.items():
        api.spec.components.security_scheme(name, dict(scheme))


def allow(
    *roles: Role, scopes: Iterable[str] = (), corporation_arg: str | None = None
) -> Callable[[F], F]:
    """Let callers holding any of ``roles`` (per-corporation roles for the
    corporation named by the view argument ``corporation_arg``) or API clients
    with any of ``scopes`` (registered for that corporation) call the view;
    everyone else gets 401/403.

    The rule is an :class:`app.people.caller.Access`, decided by
    :func:`app.people.caller.permits` like every other permission; it is appended
    to the view's OpenAPI description.
    """
    scope_set = frozenset(scopes)
    access = Access(frozenset(roles), scope_set)

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            caller = authenticate()
            if caller is None:
                raise _refuse(401, "UNAUTHENTICATED", "this endpoint needs credentials")
            corporation = kwargs.get(corporation_arg) if corporation_arg else None
            if corporation is not None:
                # A number no corporation can have is bad input (422
                # CORPORATE_NUMBER_INVALID), said before permission would call it FORBIDDEN.
                validate_corporate_number(corporation)
            if not permits(caller, access, corporation):
                raise _refuse(
                    403,
                    "FORBIDDEN",
                    "your roles do not allow this"
                    + (f" for corporation {corporation}" if corporation else ""),
                    actor=caller.actor,
                )
            return view(*args, **kwargs)

        who = [
            r.value
            + (" (of that corporation)" if corporation_arg and r not in GLOBAL_ROLES else "")
            for r in roles
        ]
        rule = "Roles: " + (", ".join(who) or "none")
        if scope_set:
            rule += "; API client scopes: " + ", ".join(sorted(scope_set))
        wrapper.__doc__ = (view.__doc__ or "").rstrip() + "\n\n" + rule + "."
        # The OpenAPI operation names how its callers authenticate (the Authorize
        # button of /docs): persons and representatives by bearer token, API clients
        # by Basic credentials. Copied, so the wrapped view's own doc is not changed.
        bearer: list[dict[str, list[str]]] = [{BEARER_SCHEME: []}] if roles else []
        basic: list[dict[str, list[str]]] = [{BASIC_SCHEME: []}] if scope_set else []
        security = bearer + basic
        apidoc = copy.deepcopy(getattr(wrapper, "_apidoc", {}))
        apidoc["manual_doc"] = {**apidoc.get("manual_doc", {}), "security": security}
        wrapper._apidoc = apidoc  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorate


def current_caller() -> Caller:
    """The caller of a view guarded by :func:`allow`."""
    caller: Caller = g.dairi_caller
    return caller
