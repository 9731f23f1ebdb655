"""Grant instructions (電子委任状) as a representative's client builds them from the
command line's flags: the principal and the grantor are read from the representative's
registration certificate, the grantee from the holder certificate, and the result is the
canonical instruction (:class:`delegation.instruction.GrantInstruction`) the card signs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.x509.oid import NameOID

from dairi import DairiError
from delegation.instruction import GrantInstruction
from delegation.scope import Scope
from identity.profiles import registered_corporation

DEFAULT_VALIDITY = timedelta(days=90)
# An instruction starts a minute back, so a service clock a little behind still finds
# the mandate valid when it is granted.
START_SLACK = timedelta(minutes=1)


class GrantInputInvalid(DairiError):
    """The flags do not make a valid grant instruction."""

    code = "INPUT_INVALID"


@dataclass(frozen=True)
class GrantTerms:
    """What the representative grants (the scope, as flags give it)."""

    actions: tuple[str, ...]
    procuring_entities: tuple[str, ...] = ()
    cases: tuple[str, ...] = ()
    amount_limit_jpy: int | None = None
    not_before: datetime | None = None
    not_after: datetime | None = None
    max_depth: int = 0


def parse_moment(text: str) -> datetime:
    """An ISO 8601 date or date-time; without an offset it is UTC."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise GrantInputInvalid(f"{text!r} is not an ISO 8601 date or time") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).replace(microsecond=0)


def certificate_name(certificate_der: bytes) -> str:
    """The subject's common name: an employee credential names the person as enrolled."""
    names = x509.load_der_x509_certificate(certificate_der).subject.get_attributes_for_oid(
        NameOID.COMMON_NAME
    )
    if not names:
        raise GrantInputInvalid("the grantee certificate has no common name (use --grantee-name)")
    return str(names[0].value)


def _names(values: Iterable[str]) -> frozenset[str] | None:
    found = frozenset(v for v in values if v)
    return found or None


def build_instruction(
    representative_certificate: bytes,
    grantee_certificate: bytes,
    terms: GrantTerms,
    *,
    grantee_name: str | None = None,
    now: datetime | None = None,
) -> GrantInstruction:
    """The grant instruction from the representative (a 商業登記電子証明書: 商号,
    法人番号, name and title are read from it) to the holder of
    ``grantee_certificate``. Raises ``INPUT_INVALID`` (or the scope's own code)."""
    try:
        corporation = registered_corporation(asn1_x509.Certificate.load(representative_certificate))
    except (ValueError, TypeError) as exc:
        raise GrantInputInvalid("the card's certificate is not a registration certificate") from exc
    if not corporation.representative_name:
        raise GrantInputInvalid("the registration certificate names no representative")
    if not terms.actions:
        raise GrantInputInvalid("name at least one --action")
    moment = (now or datetime.now(UTC)).replace(microsecond=0)
    not_before = terms.not_before or moment - START_SLACK
    scope = Scope(
        frozenset(terms.actions),
        _names(terms.procuring_entities),
        _names(terms.cases),
        terms.amount_limit_jpy,
        not_before,
        terms.not_after or not_before + DEFAULT_VALIDITY,
        max_depth=terms.max_depth,
    )
    return GrantInstruction(
        corporation.corporate_number,
        corporation.corporate_name,
        corporation.representative_name,
        corporation.representative_title,
        grantee_name or certificate_name(grantee_certificate),
        hashlib.sha256(grantee_certificate).hexdigest(),
        scope,
        created_at=moment,
    )


def build_sub_instruction(
    parent: dict[str, Any],
    grantee_certificate: bytes,
    terms: GrantTerms,
    *,
    grantee_name: str | None = None,
    now: datetime | None = None,
) -> GrantInstruction:
    """A sub-delegation (復代理) of the mandate ``parent`` (as ``GET /api/v1/mandates/{id}``
    shows it): the principal is the parent's, the grantor the parent's grantee (no title).
    Validity defaults to the rest of the parent's. Raises ``INPUT_INVALID`` (or the
    scope's own code). Entities, cases and amount left out are the parent's; whether
    the result lies within the parent is the service's judgement."""
    if not terms.actions:
        raise GrantInputInvalid("name at least one --action")
    try:
        within = Scope.from_json(parent["scope"])
        principal = parent["principal"]
        grantor = parent["grantee"]["name"]
    except (KeyError, TypeError) as exc:
        raise GrantInputInvalid("the parent mandate is not as the API shows one") from exc
    moment = (now or datetime.now(UTC)).replace(microsecond=0)
    not_before = terms.not_before or max(within.not_before, moment - START_SLACK)
    # What the flags leave out is the parent's: a sub-delegation lies within it.
    scope = Scope(
        frozenset(terms.actions),
        _names(terms.procuring_entities) or within.procuring_entities,
        _names(terms.cases) or within.cases,
        terms.amount_limit_jpy or within.amount_limit_jpy,
        not_before,
        terms.not_after or within.not_after,
        max_depth=terms.max_depth,
    )
    return GrantInstruction(
        principal["corporate_number"],
        principal["name"],
        grantor,
        None,
        grantee_name or certificate_name(grantee_certificate),
        hashlib.sha256(grantee_certificate).hexdigest(),
        scope,
        parent=str(parent["id"]),
        created_at=moment,
    )
