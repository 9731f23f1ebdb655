"""The terms of one mandate as carried by its attribute certificate (DESIGN §5).

:class:`MandateTerms` is the plain-Python form of the ``Mandate`` attribute value plus
the AC's validity window; :mod:`delegation.certificates` puts it into and reads it out
of RFC 5755 attribute certificates. What it grants is a :class:`~delegation.scope.Scope`
(actions, entities, cases, amount limit, validity, depth), judged by the scope's own
validator, so a scope that can be granted can be certified and the other way round.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from asn1crypto import cms

from dairi import DairiError
from delegation import asn1
from delegation.scope import NAME_MAX_LENGTH, Scope, ScopeError, check_text
from identity.corporate_number import CorporateNumberError, validate_corporate_number

SHA256_SIZE = 32
# Longest names a party carries (the service keeps them in columns this wide).
PARTY_NAME_MAX_LENGTH = 200
TITLE_MAX_LENGTH = 100


class MandateCertificateError(DairiError):
    """A mandate attribute certificate (or its terms, CRL or OCSP input) is unusable.

    Codes: ``MANDATE_TERMS_INVALID`` (terms that cannot be certified),
    ``AC_MALFORMED`` (DER that is not a dairi mandate AC), ``HOLDER_CERTIFICATE_MALFORMED``,
    ``PROVENANCE_INCONSISTENT`` (depth and ancestors disagree), ``AA_KEY_MISMATCH`` (the
    signing function does not hold the AA certificate's key), ``REVOCATION_REASON_INVALID``.
    """

    code = "AC_MALFORMED"


def _invalid(message: str) -> MandateCertificateError:
    return MandateCertificateError(message, "MANDATE_TERMS_INVALID")


def _text(value: object, what: str, max_length: int) -> str:
    # scope.check_text: the one rule for names (full-width spaces inside are usual in
    # Japanese names; control characters are not).
    try:
        return check_text(value, what, max_length=max_length, padded=True)
    except ScopeError as exc:
        raise _invalid(exc.message) from None


def _unrepeated(values: Sequence[str] | None, what: str) -> frozenset[str] | None:
    # A set in the scope; an AC that lists a value twice is not one dairi would write.
    if values is None:
        return None
    if len(set(values)) != len(values):
        raise _invalid(f"{what} must not repeat a value")
    return frozenset(values)


def _sorted(names: frozenset[str] | None) -> tuple[str, ...] | None:
    return None if names is None else tuple(sorted(names))


def _aware(value: datetime) -> datetime:
    # asn1crypto reads GeneralizedTime "Z" as UTC; a naive time would be the encoder's bug.
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


@dataclass(frozen=True)
class MandateParty:
    """A grantor or grantee: name, title (e.g. 代表取締役) and SHA-256 of its certificate."""

    name: str
    title: str | None
    certificate_sha256: bytes

    def __post_init__(self) -> None:
        _text(self.name, "party name", PARTY_NAME_MAX_LENGTH)
        if self.title is not None:
            _text(self.title, "party title", TITLE_MAX_LENGTH)
        if (
            not isinstance(self.certificate_sha256, bytes)
            or len(self.certificate_sha256) != SHA256_SIZE
        ):
            raise _invalid("certificate_sha256 must be 32 bytes (SHA-256)")

    def to_asn1(self) -> asn1.Party:
        value = asn1.Party({"name": self.name, "certificate_digest": self.certificate_sha256})
        if self.title is not None:
            value["title"] = self.title
        return value

    @classmethod
    def from_asn1(cls, value: asn1.Party) -> MandateParty:
        return cls(value["name"].native, value["title"].native, value["certificate_digest"].native)


@dataclass(frozen=True)
class MandateTerms:
    """What one mandate AC certifies: who grants to whom for which corporation, and the
    :class:`~delegation.scope.Scope` granted (its validity is the AC's window).

    The scope's times must be whole seconds (``Scope.check_certifiable``): an AC states
    no fractions, and terms are never rounded into something other than what was signed.
    The flat views (``actions``, ``procuring_entities``, ``cases``: sorted tuples or
    None for "any"; ``amount_limit_jpy``; ``max_depth``, 0 meaning no sub-delegation;
    ``not_before``/``not_after``) are the encoding's order.
    """

    principal_corporate_number: str
    principal_name: str
    grantor: MandateParty
    grantee: MandateParty
    scope: Scope
    instruction_digest: bytes

    def __post_init__(self) -> None:
        try:
            validate_corporate_number(self.principal_corporate_number)
        except CorporateNumberError as exc:
            raise _invalid(f"principal corporate number: {exc.message}") from None
        _text(self.principal_name, "principal name", NAME_MAX_LENGTH)
        for role in ("grantor", "grantee"):
            if not isinstance(getattr(self, role), MandateParty):
                raise _invalid(f"{role} must be a MandateParty")
        if not isinstance(self.scope, Scope):
            raise _invalid("scope must be a Scope")
        try:
            self.scope.check_certifiable()
        except ScopeError as exc:
            raise _invalid(exc.message) from None
        if (
            not isinstance(self.instruction_digest, bytes)
            or len(self.instruction_digest) != SHA256_SIZE
        ):
            raise _invalid("instruction_digest must be 32 bytes (SHA-256)")

    @property
    def actions(self) -> tuple[str, ...]:
        return tuple(sorted(self.scope.actions))

    @property
    def procuring_entities(self) -> tuple[str, ...] | None:
        return _sorted(self.scope.procuring_entities)

    @property
    def cases(self) -> tuple[str, ...] | None:
        return _sorted(self.scope.cases)

    @property
    def amount_limit_jpy(self) -> int | None:
        return self.scope.amount_limit_jpy

    @property
    def max_depth(self) -> int:
        return self.scope.max_depth

    @property
    def not_before(self) -> datetime:
        return self.scope.not_before

    @property
    def not_after(self) -> datetime:
        return self.scope.not_after

    def to_asn1(self) -> asn1.Mandate:
        """The ``Mandate`` attribute value (the validity window goes in the AC itself)."""
        value = asn1.Mandate(
            {
                "principal": {
                    "corporate_number": self.principal_corporate_number,
                    "name": self.principal_name,
                },
                "grantor": self.grantor.to_asn1(),
                "grantee": self.grantee.to_asn1(),
                "actions": list(self.actions),
                "instruction_digest": self.instruction_digest,
            }
        )
        if self.procuring_entities is not None:
            value["procuring_entities"] = list(self.procuring_entities)
        if self.cases is not None:
            value["cases"] = list(self.cases)
        if self.amount_limit_jpy is not None:
            value["amount_limit_jpy"] = self.amount_limit_jpy
        if self.max_depth:
            value["sub_delegation"] = {"max_depth": self.max_depth}
        return value

    @classmethod
    def from_asn1(
        cls, value: asn1.Mandate, *, not_before: datetime, not_after: datetime
    ) -> MandateTerms:
        """Terms from a ``Mandate`` value and the AC's validity window.

        Raises :class:`MandateCertificateError` (MANDATE_TERMS_INVALID) for values
        dairi would not certify, e.g. an explicit ``maxDepth`` of 0.
        """
        sub = value["sub_delegation"]
        max_depth = 0 if sub.native is None else sub["max_depth"].native
        if sub.native is not None and max_depth < 1:
            raise _invalid("subDelegation present with maxDepth < 1")
        try:
            scope = Scope(
                actions=_unrepeated(value["actions"].native, "actions") or frozenset(),
                procuring_entities=_unrepeated(
                    value["procuring_entities"].native, "procuring entities"
                ),
                cases=_unrepeated(value["cases"].native, "cases"),
                amount_limit_jpy=value["amount_limit_jpy"].native,
                not_before=_aware(not_before),
                not_after=_aware(not_after),
                max_depth=max_depth,
            )
        except ScopeError as exc:
            raise _invalid(exc.message) from None
        return cls(
            principal_corporate_number=value["principal"]["corporate_number"].native,
            principal_name=value["principal"]["name"].native,
            grantor=MandateParty.from_asn1(value["grantor"]),
            grantee=MandateParty.from_asn1(value["grantee"]),
            scope=scope,
            instruction_digest=value["instruction_digest"].native,
        )

    @classmethod
    def from_attribute_certificate(cls, ac: cms.AttributeCertificateV2 | bytes) -> MandateTerms:
        """Terms of a mandate AC (DER or parsed); does not verify anything.

        Raises :class:`MandateCertificateError`: AC_MALFORMED unless the AC carries
        exactly one mandate attribute with exactly one value.
        """
        try:
            if isinstance(ac, bytes):
                ac = cms.AttributeCertificateV2.load(ac, strict=True)
            info = ac["ac_info"]
            mandates = [a for a in info["attributes"] if a["type"].native == asn1.MANDATE_ATTRIBUTE]
            if len(mandates) != 1 or len(mandates[0]["values"]) != 1:
                raise MandateCertificateError(
                    "the AC must carry exactly one mandate attribute value"
                )
            validity = info["att_cert_validity_period"]
            return cls.from_asn1(
                mandates[0]["values"][0],
                not_before=validity["not_before_time"].native,
                not_after=validity["not_after_time"].native,
            )
        except MandateCertificateError as exc:
            raise MandateCertificateError(exc.message) from None  # AC_MALFORMED
        except (ValueError, TypeError, KeyError, IndexError, OverflowError) as exc:
            raise MandateCertificateError(f"not a mandate attribute certificate: {exc}") from None
