"""Who is calling, as every view and service sees it, and what they may do.

One caller model: :class:`Caller` is a person, a representative (signed in with a
commercial registration certificate) or an API client, with its roles and the
corporations it belongs to. One permission check: :func:`permits` (and
:func:`require`, which raises) decides what a caller may do with a corporation's data
(read it, grant, revoke), for views and services alike, and who may call an endpoint
(:class:`Access`, which :func:`app.http.security.allow` states per endpoint). No Flask
here: the HTTP layer (:mod:`app.http.security`) authenticates and builds the caller.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from app.people.models import GLOBAL_ROLES, AccessToken, Role
from dairi import DairiError


class CallerKind(enum.StrEnum):
    """What authenticated: a person (JPKI card), a representative (registration
    certificate) or an API client (client credentials)."""

    PERSON = "person"
    REPRESENTATIVE = "representative"
    CLIENT = "client"


@dataclass(frozen=True)
class LiveToken:
    """An access token as a request's credentials check found it: live, its
    certificate still standing (:meth:`AuthService.token`)."""

    id: str
    person_id: str | None  # None: a representative's login
    corporate_number: str | None  # a representative's corporation
    name: str
    certificate_sha256: str
    expires_at: datetime

    @classmethod
    def of(cls, row: AccessToken) -> LiveToken:
        """A token just issued (its row), as the check would find it."""
        return cls(
            row.id,
            row.person_id,
            row.corporate_number,
            row.name,
            row.certificate_sha256,
            row.expires_at,
        )


@dataclass(frozen=True)
class Caller:
    """The authenticated caller of one request (or the operator of one command)."""

    kind: CallerKind
    id: str  # person id, token id (representatives) or client id
    name: str
    roles: frozenset[Role] = frozenset()  # global roles (auditor, administrator)
    employee_of: frozenset[str] = frozenset()  # 法人番号
    representative_of: frozenset[str] = frozenset()
    scopes: frozenset[str] = frozenset()
    token: LiveToken | None = None
    # An API client reads the corporations it is registered for, or all of them.
    client_of: frozenset[str] = frozenset()  # 法人番号
    all_corporations: bool = False

    @property
    def actor(self) -> str:
        """The caller as the audit log names it, e.g. ``person:<id>``."""
        return f"{self.kind.value}:{self.id}"

    @property
    def person_id(self) -> str | None:
        return self.id if self.kind is CallerKind.PERSON else None

    @property
    def rate_key(self) -> str:
        """Whom per-caller rate limits count against: the person (however many
        tokens), the representative's certificate (a representative's token id
        differs per login) or the API client."""
        if self.kind is CallerKind.REPRESENTATIVE and self.token is not None:
            return f"certificate:{self.token.certificate_sha256}"
        return self.actor

    def holds(self, role: Role, corporation: str | None = None) -> bool:
        """Whether the caller holds ``role`` (for ``corporation``, if a per-corporation role)."""
        if self.kind is CallerKind.CLIENT:
            return False
        if role in GLOBAL_ROLES:
            return role in self.roles
        held = self.employee_of if role is Role.EMPLOYEE else self.representative_of
        return bool(held) if corporation is None else corporation in held

    @property
    def reads_all_corporations(self) -> bool:
        """An auditor, an administrator, or an API client registered for every corporation."""
        if self.kind is CallerKind.CLIENT:
            return self.all_corporations
        return bool(self.roles & {Role.AUDITOR, Role.ADMINISTRATOR})

    @property
    def readable_corporations(self) -> frozenset[str]:
        """The corporations whose data the caller reads, unless it reads all of them:
        an API client's registered ones, a person's employers and represented ones."""
        if self.kind is CallerKind.CLIENT:
            return self.client_of
        return self.employee_of | self.representative_of

    def may_read(self, corporation: str) -> bool:
        """Whether the caller may read ``corporation``'s data (mandates, staff …)."""
        return permits(self, Permission.READ, corporation)

    def describe(self) -> dict[str, object]:
        roles = sorted(
            {r.value for r in self.roles}
            | ({Role.EMPLOYEE.value} if self.employee_of else set())
            | ({Role.REPRESENTATIVE.value} if self.representative_of else set())
        )
        described: dict[str, object] = {
            "kind": self.kind.value,
            "id": self.id,
            "name": self.name,
            "roles": roles,
            "employee_of": sorted(self.employee_of),
            "representative_of": sorted(self.representative_of),
            "scopes": sorted(self.scopes),
        }
        if self.kind is CallerKind.CLIENT:
            described.update(
                corporations=sorted(self.client_of), all_corporations=self.all_corporations
            )
        return described


class Permission(enum.StrEnum):
    """What a caller may want to do with one corporation's data."""

    # Read its mandates, staff, authority (API clients: the corporations registered for).
    READ = "read"
    # Submit a grant instruction for it: an employee's sub-delegation or a representative's.
    GRANT = "grant"
    # Submit a representative's (root) grant for it: its representative, or an administrator.
    GRANT_AS_REPRESENTATIVE = "grant-as-representative"
    # Revoke one of its mandates: a representative, an administrator, or a grantor in
    # the mandate's chain (``granted_by``: the grantee person ids of its ancestors).
    REVOKE = "revoke"


@dataclass(frozen=True)
class Access:
    """Who may call one endpoint: holders of any of ``roles`` (a per-corporation role
    for the corporation the request names, if it names one) or API clients with any of
    ``scopes`` (that may read the corporation named, if one is)."""

    roles: frozenset[Role] = frozenset()
    scopes: frozenset[str] = frozenset()


class Forbidden(DairiError):
    """The caller may not do this (403 ``FORBIDDEN`` unless a more specific code is given)."""

    code = "FORBIDDEN"


def permits(
    caller: Caller,
    permission: Permission | Access,
    corporation: str | None,
    *,
    granted_by: Iterable[str] = (),
) -> bool:
    """Whether ``caller`` may do ``permission`` with ``corporation``'s (法人番号) data,
    or call an endpoint whose :class:`Access` is ``permission`` (for ``corporation``,
    or None if the request names none)."""
    if isinstance(permission, Access):
        if caller.kind is CallerKind.CLIENT:
            return bool(caller.scopes & permission.scopes) and (
                corporation is None or permits(caller, Permission.READ, corporation)
            )
        return any(caller.holds(role, corporation) for role in permission.roles)
    if corporation is None:
        raise ValueError(f"{permission.value} needs the corporation it is for")
    administrator = caller.holds(Role.ADMINISTRATOR)
    if permission is Permission.READ:
        return caller.reads_all_corporations or corporation in caller.readable_corporations
    if permission is Permission.GRANT:
        return (
            administrator
            or caller.holds(Role.REPRESENTATIVE, corporation)
            or caller.holds(Role.EMPLOYEE, corporation)
        )
    if permission is Permission.GRANT_AS_REPRESENTATIVE:
        return administrator or caller.holds(Role.REPRESENTATIVE, corporation)
    if permission is Permission.REVOKE:
        return (
            administrator
            or caller.holds(Role.REPRESENTATIVE, corporation)
            or (caller.person_id is not None and caller.person_id in set(granted_by))
        )
    raise ValueError(f"unknown permission {permission!r}")


def require(
    caller: Caller,
    permission: Permission,
    corporation: str,
    *,
    granted_by: Iterable[str] = (),
    message: str | None = None,
    code: str | None = None,
) -> None:
    """Raise :class:`Forbidden` (``code``, default ``FORBIDDEN``) unless :func:`permits`."""
    if not permits(caller, permission, corporation, granted_by=granted_by):
        raise Forbidden(
            message or f"you may not {permission.value} for corporation {corporation}", code
        )
