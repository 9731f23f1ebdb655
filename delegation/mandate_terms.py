"""The terms of one mandate as carried by its attribute certificate (DESIGN §5).

:class:`MandateTerms` is the plain-Python form of the ``Mandate`` attribute value plus
the AC's validity window; :mod:`delegation.certificates` puts it into and reads it out
of RFC 5755 attribute certificates.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from asn1crypto import cms

from dairi import DairiError
from delegation import asn1
from identity.corporate_number import CorporateNumberError, validate_corporate_number

SHA256_SIZE = 32


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


def _text(value: object, what: str) -> str:
    # Full-width spaces are usual in Japanese names; control characters are not.
    if not isinstance(value, str) or not value.strip() \
            or any(unicodedata.category(c).startswith("C") for c in value):
        raise _invalid(f"{what} must be a non-empty string without control characters")
    return value


def _texts(values: Iterable[str] | None, what: str, *, optional: bool) -> tuple[str, ...] | None:
    if values is None and optional:
        return None
    if values is None or isinstance(values, str | bytes):
        raise _invalid(f"{what} must be a sequence of strings")
    if isinstance(values, set | frozenset):
        values = sorted(values)  # a deterministic encoding
    result = tuple(_text(v, what) for v in values)
    if not result:
        # An empty restriction would grant nothing; "any" is written None.
        raise _invalid(f"{what} must not be empty")
    if len(set(result)) != len(result):
        raise _invalid(f"{what} must not repeat a value")
    return result


def _utc_seconds(value: object, what: str) -> datetime:
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise _invalid(f"{what} must be an aware datetime")
    # AC validity is a GeneralizedTime without fractions (RFC 5755 §4.2.6).
    return value.astimezone(UTC).replace(microsecond=0)


@dataclass(frozen=True)
class MandateParty:
    """A grantor or grantee: name, title (e.g. 代表取締役) and SHA-256 of its certificate."""

    name: str
    title: str | None
    certificate_sha256: bytes

    def __post_init__(self) -> None:
        _text(self.name, "party name")
        if self.title is not None:
            _text(self.title, "party title")
        if not isinstance(self.certificate_sha256, bytes) \
                or len(self.certificate_sha256) != SHA256_SIZE:
            raise _invalid("certificate_sha256 must be 32 bytes (SHA-256)")

    def to_asn1(self) -> asn1.Party:
        value = asn1.Party({"name": self.name, "certificate_digest": self.certificate_sha256})
        if self.title is not None:
            value["title"] = self.title
        return value

    @classmethod
    def from_asn1(cls, value: asn1.Party) -> MandateParty:
        return cls(value["name"].native, value["title"].native,
                   value["certificate_digest"].native)


@dataclass(frozen=True)
class MandateTerms:
    """What one mandate AC certifies. Times are normalised to whole seconds in UTC.

    ``procuring_entities`` / ``cases`` None mean "any"; ``amount_limit_jpy`` None means
    no limit; ``max_depth`` 0 means no sub-delegation (``subDelegation`` absent).
    """

    principal_corporate_number: str
    principal_name: str
    grantor: MandateParty
    grantee: MandateParty
    actions: tuple[str, ...]
    procuring_entities: tuple[str, ...] | None
    cases: tuple[str, ...] | None
    amount_limit_jpy: int | None
    max_depth: int
    instruction_digest: bytes
    not_before: datetime
    not_after: datetime

    def __post_init__(self) -> None:
        def put(name: str, value: object) -> None:
            object.__setattr__(self, name, value)

        try:
            validate_corporate_number(self.principal_corporate_number)
        except CorporateNumberError as exc:
            raise _invalid(f"principal corporate number: {exc.message}") from None
        _text(self.principal_name, "principal name")
        for role in ("grantor", "grantee"):
            if not isinstance(getattr(self, role), MandateParty):
                raise _invalid(f"{role} must be a MandateParty")
        put("actions", _texts(self.actions, "actions", optional=False))
        put("procuring_entities", _texts(self.procuring_entities, "procuring entities",
                                         optional=True))
        put("cases", _texts(self.cases, "cases", optional=True))
        amount = self.amount_limit_jpy
        if amount is not None and (type(amount) is not int or amount <= 0):
            raise _invalid("amount_limit_jpy must be a positive integer or None")
        if type(self.max_depth) is not int or self.max_depth < 0:
            raise _invalid("max_depth must be an integer >= 0")
        if not isinstance(self.instruction_digest, bytes) \
                or len(self.instruction_digest) != SHA256_SIZE:
            raise _invalid("instruction_digest must be 32 bytes (SHA-256)")
        put("not_before", _utc_seconds(self.not_before, "not_before"))
        put("not_after", _utc_seconds(self.not_after, "not_after"))
        if self.not_after <= self.not_before:
            raise _invalid("not_after must be later than not_before")

    def to_asn1(self) -> asn1.Mandate:
        """The ``Mandate`` attribute value (the validity window goes in the AC itself)."""
        value = asn1.Mandate({
            "principal": {"corporate_number": self.principal_corporate_number,
                          "name": self.principal_name},
            "grantor": self.grantor.to_asn1(),
            "grantee": self.grantee.to_asn1(),
            "actions": list(self.actions),
            "instruction_digest": self.instruction_digest,
        })
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
    def from_asn1(cls, value: asn1.Mandate, *, not_before: datetime,
                  not_after: datetime) -> MandateTerms:
        """Terms from a ``Mandate`` value and the AC's validity window.

        Raises :class:`MandateCertificateError` (MANDATE_TERMS_INVALID) for values
        dairi would not certify, e.g. an explicit ``maxDepth`` of 0.
        """
        sub = value["sub_delegation"]
        max_depth = 0 if sub.native is None else sub["max_depth"].native
        if sub.native is not None and max_depth < 1:
            raise _invalid("subDelegation present with maxDepth < 1")
        entities = value["procuring_entities"].native
        cases = value["cases"].native
        return cls(
            principal_corporate_number=value["principal"]["corporate_number"].native,
            principal_name=value["principal"]["name"].native,
            grantor=MandateParty.from_asn1(value["grantor"]),
            grantee=MandateParty.from_asn1(value["grantee"]),
            actions=tuple(value["actions"].native),
            procuring_entities=None if entities is None else tuple(entities),
            cases=None if cases is None else tuple(cases),
            amount_limit_jpy=value["amount_limit_jpy"].native,
            max_depth=max_depth,
            instruction_digest=value["instruction_digest"].native,
            not_before=not_before,
            not_after=not_after,
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
            mandates = [a for a in info["attributes"]
                        if a["type"].native == asn1.MANDATE_ATTRIBUTE]
            if len(mandates) != 1 or len(mandates[0]["values"]) != 1:
                raise MandateCertificateError(
                    "the AC must carry exactly one mandate attribute value")
            validity = info["att_cert_validity_period"]
            return cls.from_asn1(mandates[0]["values"][0],
                                 not_before=validity["not_before_time"].native,
                                 not_after=validity["not_after_time"].native)
        except MandateCertificateError as exc:
            raise MandateCertificateError(exc.message) from None  # AC_MALFORMED
        except (ValueError, TypeError, KeyError, IndexError, OverflowError) as exc:
            raise MandateCertificateError(f"not a mandate attribute certificate: {exc}") from None
