"""Grant instructions: the 電子委任状 proper (DESIGN §5).

A grant instruction is canonical JSON (RFC 8785) naming the principal, grantor,
grantee and scope, signed by the grantor as CMS SignedData (detached, SHA-256)
over exactly those bytes. This module reads the instruction, checks every CMS
signature's integrity (pyHanko's CMS code) and applies the representative
rules; certificate path and revocation checks are :mod:`identity.validation`'s.

Every instruction carries a fresh random nonce and its creation time (whole
seconds, UTC) inside the signed bytes, so that the service can accept each
instruction once (by its digest) and only while it is fresh
(:func:`check_fresh`): a signed grant cannot be replayed, and a revoked one
cannot be granted again.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import rfc8785
from asn1crypto import cms
from asn1crypto import x509 as asn1_x509
from pyhanko.sign.validation.generic_cms import validate_sig_integrity

from dairi import DairiError
from delegation.mandate_terms import PARTY_NAME_MAX_LENGTH, TITLE_MAX_LENGTH
from delegation.scope import NAME_MAX_LENGTH, Scope, ScopeError, check_text
from identity.corporate_number import CorporateNumberError, validate_corporate_number
from identity.names import same_name
from identity.profiles import RegisteredCorporation

# /2 added the nonce and the creation time; /1 instructions (replayable) are refused.
INSTRUCTION_TYPE = "dairi-grant-instruction/2"
_KEYS = {"type", "nonce", "created_at", "principal", "grantor", "grantee", "parent", "scope"}
NONCE_BYTES = 16  # the least a nonce carries (128 bits: never repeated by chance)
_MAX_NONCE_BYTES = 64
_BASE64URL = re.compile(r"[A-Za-z0-9_-]+")
_CREATED_AT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")
# How far ahead of the service's clock a grantor's clock may be.
FUTURE_SKEW = timedelta(minutes=2)


def new_nonce() -> str:
    """A fresh nonce: 16 random bytes, base64url without padding."""
    return base64.urlsafe_b64encode(secrets.token_bytes(NONCE_BYTES)).rstrip(b"=").decode()


def _whole_seconds_now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


class DelegationRefused(DairiError):
    """A grant or a chain does not hold; ``code`` says why."""


@dataclass(frozen=True)
class GrantInstruction:
    """What the grantor signs: who grants what to whom, for which corporation."""

    principal_corporate_number: str  # 法人番号
    principal_name: str
    grantor_name: str
    grantor_title: str | None
    grantee_name: str
    grantee_certificate_sha256: str  # hex; the grantee's signing certificate (AC holder)
    scope: Scope
    parent: str | None = None  # the parent mandate's id, for a sub-delegation
    # Fresh for every instruction made: what makes two grants of the same terms two
    # instructions, and lets the service refuse a replay or a stale one.
    nonce: str = field(default_factory=new_nonce)  # base64url, at least 16 bytes
    created_at: datetime = field(default_factory=_whole_seconds_now)  # whole seconds, UTC

    def to_json(self) -> dict[str, Any]:
        if self.created_at.tzinfo is None or self.created_at.microsecond:
            raise ValueError("created_at is an aware time in whole seconds")
        return {
            "type": INSTRUCTION_TYPE,
            "nonce": self.nonce,
            "created_at": self.created_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "principal": {
                "corporate_number": self.principal_corporate_number,
                "name": self.principal_name,
            },
            "grantor": {"name": self.grantor_name, "title": self.grantor_title},
            "grantee": {
                "name": self.grantee_name,
                "certificate_sha256": self.grantee_certificate_sha256,
            },
            "parent": self.parent,
            "scope": self.scope.to_json(),
        }

    def canonical(self) -> bytes:
        """The bytes the grantor signs."""
        return rfc8785.dumps(self.to_json())

    @classmethod
    def parse(cls, data: bytes) -> GrantInstruction:
        """Read instruction bytes; raises ``INSTRUCTION_MALFORMED``.

        Everything the attribute authority would refuse to certify is refused here, by
        the same validators (:func:`delegation.scope.check_text`, the scope's own
        checks, whole-second validity), so a bad instruction is refused before any
        certificate is validated or any revocation status fetched. Bytes that are not
        the instruction's canonical form (RFC 8785) are refused as well: what was
        signed must be exactly what the service reads and keeps."""
        try:
            doc = json.loads(data.decode("utf-8"))
            if not isinstance(doc, dict) or set(doc) != _KEYS:
                raise ValueError("the instruction's members are not the expected ones")
            if doc["type"] != INSTRUCTION_TYPE:
                raise ValueError(f"type is not {INSTRUCTION_TYPE}")
            principal, grantor, grantee = doc["principal"], doc["grantor"], doc["grantee"]
            number = validate_corporate_number(_text(principal["corporate_number"]))
            digest = _text(grantee["certificate_sha256"]).lower()
            if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
                raise ValueError("grantee.certificate_sha256 is not a SHA-256 hex digest")
            parent = doc["parent"]
            scope = Scope.from_json(doc["scope"])
            scope.check_certifiable()
            parsed = cls(
                nonce=_nonce(doc["nonce"]),
                created_at=_created_at(doc["created_at"]),
                principal_corporate_number=number,
                principal_name=_name(principal["name"], "principal.name", NAME_MAX_LENGTH),
                grantor_name=_name(grantor["name"], "grantor.name", PARTY_NAME_MAX_LENGTH),
                grantor_title=None
                if grantor.get("title") is None
                else _name(grantor["title"], "grantor.title", TITLE_MAX_LENGTH),
                grantee_name=_name(grantee["name"], "grantee.name", PARTY_NAME_MAX_LENGTH),
                grantee_certificate_sha256=digest,
                scope=scope,
                parent=None if parent is None else _text(parent),
            )
            canonical = parsed.canonical()
        except (CorporateNumberError, ScopeError) as exc:
            raise DelegationRefused(
                f"malformed grant instruction: {exc.message}", "INSTRUCTION_MALFORMED"
            ) from exc
        except RecursionError as exc:  # JSON nested deeper than the parser can follow
            raise DelegationRefused(
                "malformed grant instruction: nested too deep", "INSTRUCTION_MALFORMED"
            ) from exc
        except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError) as exc:
            raise DelegationRefused(
                f"malformed grant instruction: {exc}", "INSTRUCTION_MALFORMED"
            ) from exc
        if canonical != data:
            raise DelegationRefused(
                "the instruction is not in canonical form (RFC 8785)", "INSTRUCTION_MALFORMED"
            )
        return parsed


def _text(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("a name or identifier is empty or not a string")
    return value


def _name(value: object, what: str, max_length: int) -> str:
    # The mandate certificate's rule for names (MandateParty, MandateTerms).
    return check_text(value, what, max_length=max_length, padded=True)


def _nonce(value: object) -> str:
    if not isinstance(value, str) or not _BASE64URL.fullmatch(value):
        raise ValueError("nonce is not base64url (no padding)")
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ValueError("nonce is not base64url") from exc
    if not NONCE_BYTES <= len(raw) <= _MAX_NONCE_BYTES:
        raise ValueError(f"nonce must carry {NONCE_BYTES} to {_MAX_NONCE_BYTES} random bytes")
    return value


def _created_at(value: object) -> datetime:
    if not isinstance(value, str) or not _CREATED_AT.fullmatch(value):
        raise ValueError("created_at must be whole seconds in UTC, like 2026-11-30T12:00:00Z")
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def check_fresh(instruction: GrantInstruction, now: datetime, max_age: timedelta) -> None:
    """Refuse an instruction made more than ``max_age`` before ``now``, or more than
    :data:`FUTURE_SKEW` after it: ``INSTRUCTION_STALE``. Together with accepting each
    instruction once, this bounds how long a signed grant can be presented."""
    age = now - instruction.created_at
    if age > max_age:
        raise DelegationRefused(
            f"the instruction was made {int(age.total_seconds())} s ago; grants are accepted "
            f"for {int(max_age.total_seconds())} s after they are made",
            "INSTRUCTION_STALE",
        )
    if -age > FUTURE_SKEW:
        raise DelegationRefused(
            "the instruction's creation time is in the future; check the signing computer's clock",
            "INSTRUCTION_STALE",
        )


@dataclass(frozen=True)
class InstructionSigner:
    """A signer whose CMS signature over the instruction bytes is intact."""

    certificate_der: bytes
    other_certificates: tuple[bytes, ...]
    signing_time: datetime | None


def instruction_signers(
    instruction: bytes, signed_data_der: bytes
) -> tuple[InstructionSigner, ...]:
    """Check every SignerInfo of a detached CMS SignedData over ``instruction``.

    Raises ``INSTRUCTION_SIGNATURE_INVALID`` when the CMS is malformed, carries
    no signer, embeds other content, lacks a signer's certificate, or any
    signature or message digest does not match.
    """

    def refuse(why: str) -> DelegationRefused:
        return DelegationRefused(f"instruction signature: {why}", "INSTRUCTION_SIGNATURE_INVALID")

    try:
        content = cms.ContentInfo.load(signed_data_der, strict=True)
        if content["content_type"].native != "signed_data":
            raise refuse("not CMS SignedData")
        signed: cms.SignedData = content["content"]
        if signed["encap_content_info"]["content"].native is not None:
            raise refuse("the instruction must be detached, not embedded")
        certs = [
            c.chosen
            for c in signed["certificates"] or []
            if isinstance(c.chosen, asn1_x509.Certificate)
        ]
        infos = list(signed["signer_infos"])
    except DelegationRefused:
        raise
    except (ValueError, TypeError, KeyError) as exc:
        raise refuse("not DER CMS") from exc
    if not infos:
        raise refuse("no signer")
    found = []
    for info in infos:
        sid = info["sid"]
        if sid.name != "issuer_and_serial_number":
            raise refuse("signers must be named by issuer and serial number")
        wanted = sid.chosen
        cert = next(
            (
                c
                for c in certs
                if c.issuer == wanted["issuer"]
                and c.serial_number == wanted["serial_number"].native
            ),
            None,
        )
        if cert is None:
            raise refuse("a signer's certificate is not in the CMS")
        algorithm = info["digest_algorithm"]["algorithm"].native
        if algorithm not in {"sha256", "sha384", "sha512"}:
            raise refuse(f"digest algorithm {algorithm} is not accepted")
        digest = hashlib.new(algorithm, instruction).digest()
        try:
            intact, valid = validate_sig_integrity(info, cert, "data", digest)
        except Exception as exc:  # pyHanko raises several types for broken input
            raise refuse("the signature could not be checked") from exc
        if not (intact and valid):
            raise refuse("a signature does not match the instruction bytes")
        signing_time = None
        for attribute in info["signed_attrs"] or []:
            if attribute["type"].native == "signing_time":
                signing_time = attribute["values"][0].native
        found.append(
            InstructionSigner(
                cert.dump(), tuple(c.dump() for c in certs if c is not cert), signing_time
            )
        )
    return tuple(found)


def check_representative_grant(
    instruction: GrantInstruction,
    corporations: Sequence[RegisteredCorporation],
    *,
    representative_titles: Sequence[str],
    required_signatures: int = 1,
) -> int:
    """The representative rules for a root grant, given each signer's (validated)
    registration certificate contents, in the signers' order. Returns the index of the
    signer the instruction names as its grantor.

    Raises, in this order: ``REPRESENTATIVE_CORPORATION_MISMATCH`` (a signer's
    会社法人等番号 is another corporation's), ``GRANTOR_NOT_REPRESENTATIVE`` (a title
    not configured as a representative's), ``JOINT_REPRESENTATION_INCOMPLETE`` (fewer
    distinct representatives than the corporation's joint representation requires),
    ``PRINCIPAL_NAME_MISMATCH`` (the instruction's principal name is not the registered
    商号), ``GRANTOR_NOT_SIGNER`` (the instruction's grantor is none of its signers).
    Names compare without their spaces (:func:`identity.names.same_name`).
    """
    for corporation in corporations:
        if corporation.corporate_number != instruction.principal_corporate_number:
            raise DelegationRefused(
                f"a signer's certificate is for 法人番号 {corporation.corporate_number}, "
                f"not the principal {instruction.principal_corporate_number}",
                "REPRESENTATIVE_CORPORATION_MISMATCH",
            )
        if corporation.representative_title not in representative_titles:
            raise DelegationRefused(
                f"the title {corporation.representative_title!r} is not a representative's",
                "GRANTOR_NOT_REPRESENTATIVE",
            )
    distinct = {"".join((c.representative_name or "").split()) for c in corporations}
    if len(distinct) < required_signatures:
        raise DelegationRefused(
            f"joint representation needs {required_signatures} representatives' signatures, "
            f"found {len(distinct)}",
            "JOINT_REPRESENTATION_INCOMPLETE",
        )
    for corporation in corporations:
        if not same_name(corporation.corporate_name, instruction.principal_name):
            raise DelegationRefused(
                f"the principal's name is not the registered name {corporation.corporate_name!r}",
                "PRINCIPAL_NAME_MISMATCH",
            )
    for index, corporation in enumerate(corporations):
        if same_name(corporation.representative_name or "", instruction.grantor_name):
            return index
    raise DelegationRefused(
        "the instruction's grantor is none of its signers", "GRANTOR_NOT_SIGNER"
    )


def check_sub_delegation_signers(
    instruction: GrantInstruction, signers: Sequence[InstructionSigner]
) -> InstructionSigner:
    """A sub-delegation (復代理) is signed by its grantor alone, the parent's grantee:
    returns that signer. Raises ``SUBDELEGATION_MULTIPLE_SIGNERS``. Whether the signer
    is the parent's grantee is :func:`delegation.chain.judge_hop`'s rule
    (``GRANTOR_NOT_PARENT_GRANTEE``); whether the instruction names that signer as its
    grantor is :func:`check_sub_delegation_grantor`'s."""
    if len(signers) != 1:
        raise DelegationRefused(
            f"a sub-delegation is signed by its grantor alone, not by {len(signers)} signers",
            "SUBDELEGATION_MULTIPLE_SIGNERS",
        )
    return signers[0]


def check_sub_delegation_grantor(instruction: GrantInstruction, parent_grantee_name: str) -> None:
    """The instruction's grantor must be the parent's grantee who signed it:
    ``GRANTOR_NOT_SIGNER`` otherwise."""
    if not same_name(parent_grantee_name, instruction.grantor_name):
        raise DelegationRefused(
            "the instruction's grantor is not the parent's grantee who signed it",
            "GRANTOR_NOT_SIGNER",
        )
