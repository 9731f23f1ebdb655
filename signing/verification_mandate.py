"""The mandate part of a verification report (DESIGN §5, §7), from the document alone
plus the relying party's trust.

* The leaf mandate AC is read from the CMS ``signer-attributes-v2`` certified
  attributes; it must be signed by one of the trusted attribute authorities, and its
  ancestors come from its provenance extension (:class:`MandateChainReader`).
* Each hop's status at the signing time comes from the AA's CRLs and OCSP responses
  found in the DSS or given by the relying party, each checked against the AA's key
  (revocation cascades, so a hop's own entry answers for it). With none at all the
  status is not proven: ``MANDATE_STATUS_UNKNOWN``.
* The chain rules and the purpose are :func:`delegation.chain.evaluate_chain`'s, at
  the signing time.
* The root grant is checked from the embedded evidence (``mandate-0-*``): the
  instruction's digest is the one the root AC certifies, the representative's CMS over
  it verifies, the registration certificate chains to a registration anchor, and its
  商号/法人番号/title make a representative of the AC's principal.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from asn1crypto import core
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509 import ocsp as pyca_ocsp
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation.pdf_embedded import EmbeddedPdfSignature
from pyhanko_certvalidator import CertificateValidator, ValidationContext
from pyhanko_certvalidator.errors import PathBuildingError, PathValidationError

from dairi import DairiError
from delegation.aa_revinfo import mandate_serial
from delegation.certificates import MandateCertificateError, ParsedMandate
from delegation.instruction import GrantInstruction, check_representative_grant, instruction_signers
from delegation.scope import Purpose
from delegation.verify import MandateChainReader, mandate_id_of
from identity.profiles import registered_corporation
from signing.mandate_evidence import evidence_file_names
from signing.verification_cache import BoundedCache, cache, digest_of

if TYPE_CHECKING:
    from signing.verification import HopReport, MandateReport, RootGrantReport, VerificationTrust

STATUS_UNKNOWN = "MANDATE_STATUS_UNKNOWN"


@dataclass(frozen=True)
class AcStatusSource:
    """The AA's revocation entries proven by its signature: serial → revocation time."""

    revoked: dict[int, datetime]
    proven: bool  # at least one CRL or OCSP response from the AA was found

    def status_of(self, serial: int) -> datetime | None:
        return self.revoked.get(mandate_serial(serial))


def _aa_key(aa_der: bytes) -> rsa.RSAPublicKey | None:
    key = x509.load_der_x509_certificate(aa_der).public_key()
    return key if isinstance(key, rsa.RSAPublicKey) else None


# Keyed by the exact bytes each result depends on (see signing.verification_cache).
# Immutable results are shared by every thread; a chain reader holds a parsed asn1crypto
# name (the AA's), so each thread has its own.
_AC_STATUS: BoundedCache[AcStatusSource] = cache("ac status", shared=True)
_CHAIN_READERS: BoundedCache[MandateChainReader | None] = cache("mandate chain readers")
_ISSUED_BY_AA: BoundedCache[bool] = cache("issued by aa", shared=True)
_PARSED_ACS: BoundedCache[ParsedMandate] = cache("parsed mandate acs", shared=True)
_ROOT_GRANTS: BoundedCache[RootGrantReport] = cache("root grants", shared=True)
_SUB_EVIDENCE: BoundedCache[tuple[str, ...]] = cache("sub-delegation evidence", shared=True)


def ac_status(aa_der: bytes, crls: Iterable[bytes], ocsps: Iterable[bytes]) -> AcStatusSource:
    """What the AA's own CRLs and OCSP answers among ``crls``/``ocsps`` say (cached by
    the exact bytes of all three)."""
    crls, ocsps = tuple(crls), tuple(ocsps)
    key = digest_of(aa_der, crls, ocsps)
    return _AC_STATUS.get_or_compute(key, lambda: _ac_status(aa_der, crls, ocsps))


def _ac_status(aa_der: bytes, crls: Iterable[bytes], ocsps: Iterable[bytes]) -> AcStatusSource:
    aa = x509.load_der_x509_certificate(aa_der)
    key = _aa_key(aa_der)
    revoked: dict[int, datetime] = {}
    proven = False
    if key is None:
        return AcStatusSource(revoked, proven)
    for der in crls:
        try:
            crl = x509.load_der_x509_crl(der)
            if crl.issuer != aa.subject or not crl.is_signature_valid(key):
                continue
        except (ValueError, TypeError):
            continue
        proven = True
        for entry in crl:
            serial = mandate_serial(entry.serial_number)
            when = entry.revocation_date_utc
            revoked[serial] = min(when, revoked.get(serial, when))
    for der in ocsps:
        try:
            response = pyca_ocsp.load_der_ocsp_response(der)
            if response.response_status is not pyca_ocsp.OCSPResponseStatus.SUCCESSFUL:
                continue
            algorithm = response.signature_hash_algorithm
            if algorithm is None:
                continue
            key.verify(
                response.signature, response.tbs_response_bytes, padding.PKCS1v15(), algorithm
            )
            singles = list(response.responses)
        except (ValueError, TypeError, InvalidSignature):
            continue
        proven = True
        for single in singles:
            if single.certificate_status is pyca_ocsp.OCSPCertStatus.REVOKED:
                serial = mandate_serial(single.serial_number)
                said = single.revocation_time_utc
                if said is not None:
                    revoked[serial] = min(said, revoked.get(serial, said))
    return AcStatusSource(revoked, proven)


def leaf_ac(embedded: EmbeddedPdfSignature) -> bytes | None:
    """The first AC among the signer's certified attributes (signer-attributes-v2)."""
    for attribute in embedded.signer_info["signed_attrs"] or ():
        if attribute["type"].native != "signer_attributes_v2":
            continue
        certified = attribute["values"][0]["certified_attributes_v2"]
        if isinstance(certified, core.Void):
            return None
        for item in certified:
            if item.name == "attr_cert":
                # The choice tags it [1]; the AC itself is a universal SEQUENCE.
                return bytes(item.chosen.untag().dump())
    return None


def embedded_files(reader: PdfFileReader) -> dict[str, bytes]:
    """The document's embedded files by name (an empty dict when it has none)."""
    try:
        names = reader.root["/Names"]["/EmbeddedFiles"]["/Names"]
    except KeyError:
        return {}
    found: dict[str, bytes] = {}
    for i in range(0, len(names) - 1, 2):
        try:
            found[str(names[i])] = names[i + 1].get_object()["/EF"]["/F"].get_object().data
        except (KeyError, AttributeError, TypeError):
            continue
    return found


async def _registration_path_ok(cert_der: bytes, others: tuple[bytes, ...], anchors, at) -> bool:  # type: ignore[no-untyped-def]
    if not anchors:
        return False
    context = ValidationContext(
        trust_roots=[asn1_x509.Certificate.load(a) for a in anchors],
        other_certs=[asn1_x509.Certificate.load(c) for c in others],
        allow_fetching=False,
        revocation_mode="soft-fail",
        moment=at,
    )
    validator = CertificateValidator(
        asn1_x509.Certificate.load(cert_der),
        intermediate_certs=[asn1_x509.Certificate.load(c) for c in others],
        validation_context=context,
    )
    try:
        await validator.async_validate_path()
    except (PathBuildingError, PathValidationError, ValueError):
        return False
    return True


async def check_root_grant(
    files: dict[str, bytes],
    root: ParsedMandate,
    reader_issued: Callable[[bytes], bool],
    trust: VerificationTrust,
) -> RootGrantReport:
    """The root grant judged from its embedded evidence (see the module docstring)."""
    from signing.verification import RootGrantReport

    instruction_name, cms_name, ac_name = evidence_file_names(0)
    if not all(name in files for name in (instruction_name, cms_name, ac_name)):
        return RootGrantReport(False, None, None, None, None, ("EVIDENCE_MISSING",))
    instruction, signature, ac = files[instruction_name], files[cms_name], files[ac_name]
    reasons: list[str] = []
    terms = root.terms
    if hashlib.sha256(instruction).digest() != terms.instruction_digest:
        reasons.append("EVIDENCE_MISMATCH")
    try:
        from delegation.certificates import parse_mandate_certificate

        ac_mandate = parse_mandate_certificate(ac)
        if ac_mandate.serial_number != root.serial_number or not reader_issued(ac):
            reasons.append("EVIDENCE_MISMATCH")
    except MandateCertificateError:
        reasons.append("EVIDENCE_MISMATCH")
    try:
        grant = GrantInstruction.parse(instruction)
        signers = instruction_signers(instruction, signature)
    except DairiError as exc:
        return RootGrantReport(True, None, None, None, None, (*reasons, exc.code))
    corporations = []
    for signer in signers:
        at = signer.signing_time or terms.not_before
        if not await _registration_path_ok(
            signer.certificate_der, signer.other_certificates, trust.registration_roots, at
        ):
            reasons.append("REPRESENTATIVE_CERT_UNTRUSTED")
        try:
            corporations.append(
                registered_corporation(asn1_x509.Certificate.load(signer.certificate_der))
            )
        except (DairiError, ValueError):
            reasons.append("GRANTOR_NOT_REPRESENTATIVE")
    first = corporations[0] if corporations else None
    if corporations:
        try:
            check_representative_grant(
                grant, corporations, representative_titles=trust.representative_titles
            )
        except DairiError as exc:
            reasons.append(exc.code)
        if grant.principal_corporate_number != terms.principal_corporate_number:
            reasons.append("PRINCIPAL_MISMATCH")
    return RootGrantReport(
        checked=True,
        representative=first.representative_name if first else None,
        title=first.representative_title if first else None,
        corporation=first.corporate_name if first else None,
        corporate_number=first.corporate_number if first else None,
        reasons=tuple(dict.fromkeys(reasons)),
    )


def sub_delegation_evidence(files: dict[str, bytes], mandate: ParsedMandate) -> list[str]:
    """A sub-delegation's evidence: its instruction is the one its AC certifies, signed
    (CMS, through the service) by the certificate the AC names as grantor."""
    instruction_name, cms_name, _ = evidence_file_names(mandate.depth)
    if instruction_name not in files or cms_name not in files:
        return ["EVIDENCE_MISSING"]
    instruction = files[instruction_name]
    if hashlib.sha256(instruction).digest() != mandate.terms.instruction_digest:
        return ["EVIDENCE_MISMATCH"]
    try:
        signers = instruction_signers(instruction, files[cms_name])
    except DairiError as exc:
        return [exc.code]
    grantor = mandate.terms.grantor.certificate_sha256
    if not any(hashlib.sha256(s.certificate_der).digest() == grantor for s in signers):
        return ["GRANTOR_NOT_SIGNER"]
    return []


def _hop_report(mandate: ParsedMandate, reasons: tuple[str, ...], revoked_at) -> HopReport:  # type: ignore[no-untyped-def]
    from signing.verification import HopReport

    terms = mandate.terms
    return HopReport(
        mandate_id=mandate_id_of(mandate.serial_number),
        depth=mandate.depth,
        principal_name=terms.principal_name,
        principal_corporate_number=terms.principal_corporate_number,
        grantor=terms.grantor.name + (f" ({terms.grantor.title})" if terms.grantor.title else ""),
        grantee=terms.grantee.name,
        actions=tuple(terms.actions),
        procuring_entities=terms.procuring_entities,
        cases=terms.cases,
        amount_limit_jpy=terms.amount_limit_jpy,
        not_before=terms.not_before,
        not_after=terms.not_after,
        revoked_at=revoked_at,
        reasons=reasons,
    )


async def check_mandate(
    embedded: EmbeddedPdfSignature,
    trust: VerificationTrust,
    purpose: Purpose | None,
    principal: str | None,
    at: datetime,
    revinfo: tuple[list[bytes], list[bytes]],
    files: dict[str, bytes] | None = None,
) -> MandateReport | None:
    """The mandate of a PDF signature judged at ``at`` (:func:`judge_mandate`); None
    when it carries no AC. ``files``: the document's embedded files when already read."""
    leaf_der = leaf_ac(embedded)
    if leaf_der is None:
        return None
    return await judge_mandate(
        leaf_der,
        embedded.signer_cert.dump(),
        files if files is not None else embedded_files(embedded.reader),
        trust,
        purpose,
        principal,
        at,
        revinfo,
    )


async def judge_mandate(
    leaf_der: bytes,
    signer_certificate_der: bytes,
    files: Mapping[str, bytes],
    trust: VerificationTrust,
    purpose: Purpose | None,
    principal: str | None,
    at: datetime,
    revinfo: tuple[Iterable[bytes], Iterable[bytes]],
) -> MandateReport:
    """The mandate whose leaf AC is ``leaf_der`` judged at ``at`` for the holder of
    ``signer_certificate_der``, from what any document format yields: the AC, the
    signer, the evidence files by their :func:`evidence_file_names` names, and the CRLs
    and OCSP responses ``revinfo`` the document and the relying party hold (PAdES:
    :func:`check_mandate`; XAdES: ``signing.verification_xml``)."""
    from dataclasses import replace

    from signing.verification import MandateReport

    reader = _reader_for(leaf_der, trust.aa_certificates)
    if reader is None:
        return MandateReport(True, False, None, at, (), None, ("AC_NOT_ISSUED_BY_AA",))
    chain_reader, aa_der = reader
    try:
        leaf = _parsed(leaf_der, None)
        mandates = [_parsed(a, d) for d, a in enumerate(leaf.ancestors)] + [leaf]
    except MandateCertificateError as exc:
        return MandateReport(True, False, None, at, (), None, (exc.code,))
    status = ac_status(aa_der, *revinfo)
    chain_principal = principal or leaf.terms.principal_corporate_number
    asked = replace(purpose, at=at) if purpose is not None else _own_purpose(leaf, at)
    verdict = chain_reader.evaluate(
        leaf_der,
        asked,
        principal=chain_principal,
        signer_certificate_der=signer_certificate_der,
        status_of=status.status_of,
    )
    hops = tuple(
        _hop_report(m, v.reasons, status.status_of(m.serial_number))
        for m, v in zip(mandates, verdict.hops, strict=True)
    )
    reasons = list(verdict.codes())
    if purpose is None:
        # Judged for the leaf's own action: the scope codes answer no question asked,
        # while its validity at the signing time (MANDATE_EXPIRED ...) still counts.
        reasons = [r for r in reasons if not r.startswith("SCOPE_") or r not in verdict.reasons]
    subject = asn1_x509.Certificate.load(signer_certificate_der).subject.native
    signer_org = subject.get("organization_identifier")
    if (
        isinstance(signer_org, str)
        and signer_org != f"NTRJP-{leaf.terms.principal_corporate_number}"
    ):
        reasons.append("PRINCIPAL_MISMATCH")
    if not status.proven:
        reasons.append(STATUS_UNKNOWN)
    files = dict(files)
    root_grant = await _root_grant(files, mandates[0], chain_reader, aa_der, trust)
    reasons.extend(root_grant.reasons)
    for sub_mandate in mandates[1:]:
        names = evidence_file_names(sub_mandate.depth)[:2]
        key = digest_of(sub_mandate.der, sub_mandate.depth, [files.get(n) for n in names])
        found = _SUB_EVIDENCE.get(key)
        if found is None:
            found = tuple(sub_delegation_evidence(files, sub_mandate))
            _SUB_EVIDENCE.put(key, found)
        reasons.extend(found)
    purpose_codes = set(verdict.reasons) - {"HOLDER_MISMATCH", "CHAIN_EMPTY"}
    return MandateReport(
        present=True,
        holds=not reasons,
        covers_purpose=None if purpose is None else not purpose_codes,
        at=at,
        hops=hops,
        root_grant=root_grant,
        reasons=tuple(dict.fromkeys(reasons)),
    )


def _parsed(der: bytes, depth: int | None) -> ParsedMandate:
    from delegation.certificates import parse_mandate_certificate

    return _PARSED_ACS.get_or_compute(
        digest_of(der, depth), lambda: parse_mandate_certificate(der, embedded_depth=depth)
    )


async def _root_grant(
    files: dict[str, bytes],
    root: ParsedMandate,
    chain_reader: MandateChainReader,
    aa_der: bytes,
    trust: VerificationTrust,
) -> RootGrantReport:
    """:func:`check_root_grant`, cached by everything it reads: the evidence files, the
    root AC, the AA and the registration anchors and titles of ``trust``."""
    key = digest_of(
        [files.get(n) for n in evidence_file_names(0)],
        root.der,
        aa_der,
        trust.registration_roots,
        trust.representative_titles,
    )
    found = _ROOT_GRANTS.get(key)
    if found is None:
        found = await check_root_grant(files, root, chain_reader.issued_by_aa, trust)
        _ROOT_GRANTS.put(key, found)
    return found


class _CachedChainReader(MandateChainReader):
    """A chain reader whose AA signature checks are remembered by the AC's bytes."""

    def __init__(self, aa_certificate_der: bytes) -> None:
        super().__init__(aa_certificate_der)
        self._aa_der = aa_certificate_der

    def issued_by_aa(self, der: bytes) -> bool:
        key = digest_of(self._aa_der, der)
        return _ISSUED_BY_AA.get_or_compute(
            key, lambda: super(_CachedChainReader, self).issued_by_aa(der)
        )


def _chain_reader(aa_der: bytes) -> MandateChainReader | None:
    def make() -> MandateChainReader | None:
        try:
            return _CachedChainReader(aa_der)
        except (MandateCertificateError, ValueError):
            return None

    return _CHAIN_READERS.get_or_compute(digest_of(aa_der), make)


def _own_purpose(leaf: ParsedMandate, at: datetime) -> Purpose:
    """With no purpose asked, the chain is judged for one of the leaf's own actions."""
    actions = sorted(a for a in leaf.terms.actions if not a.endswith("*"))
    return Purpose(actions[0] if actions else "bid", None, None, None, at)


def _reader_for(
    leaf_der: bytes, aa_certificates: Iterable[bytes]
) -> tuple[MandateChainReader, bytes] | None:
    for aa_der in aa_certificates:
        reader = _chain_reader(aa_der)
        if reader is None:
            continue
        if reader.issued_by_aa(leaf_der):
            return reader, aa_der
    return None
