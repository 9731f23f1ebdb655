"""Mandate attribute certificates (RFC 5755 ACv2) and the AA's own CRL and OCSP answers.

The attribute authority (AA) certifies :class:`MandateTerms` for a holder's signing
certificate.

Two forms of one mandate (DESIGN §5, issue 10 item 12). The *full* AC is what the holder
gets and what travels in a signature: its provenance extension lists the ancestors, root
first. Each ancestor is listed in its *embedded* (bare) form: the ancestor's AC without
its provenance extension and with its own serial ``EMBEDDED_SERIAL_OFFSET + serial``,
signed by the AA, so a chain of depth d holds d + 1 ACs of about one size each (linear,
not doubling) and the chain reader still checks the AA's signature on every hop. The AA
derives the embedded form from the full AC when it issues a child (``embedded_form``):
RSA PKCS#1 v1.5 is deterministic, so every descendant embeds the same bytes, and no second
AC is stored. A distinct serial keeps issuer+serial unique (RFC 5755 §4.2.5); status is
the mandate's, so readers ask for ``serial - EMBEDDED_SERIAL_OFFSET`` and the AA's OCSP
responder answers an embedded serial with its mandate's status.

Roles: a representative's grant (depth 0) carries ``urn:dairi:action:<action>``; a
sub-delegation (復代理, depth > 0) ``urn:dairi:subdelegated-action:<action>``, so a generic
verifier that reads only roles (and skips the non-critical provenance extension) cannot
take a 復代理 for a direct grant. The provenance extension stays non-critical:
pyhanko-certvalidator's ``async_validate_ac`` refuses every AC with a critical extension it
does not know, which would refuse every sub-delegated leaf.

The AA's key stays in the HSM: :class:`AttributeAuthority` only gets a
``sign(data) -> signature`` function (RSA PKCS#1 v1.5 with SHA-256) and checks every
signature it obtains against the AA certificate, so a misconfigured key is caught at once.
asn1crypto objects are built per call and never shared between threads.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import quote

from asn1crypto import cms, core, x509
from cryptography import x509 as pyca_x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from pyhanko_certvalidator.asn1_types import SequenceOfTargets, Target

from delegation import asn1
from delegation.aa_revinfo import (
    EMBEDDED_SERIAL_OFFSET,
    build_crl,
    build_ocsp_response,
    check_serial,
)
from delegation.mandate_terms import MandateCertificateError, MandateParty, MandateTerms

__all__ = [
    "EMBEDDED_SERIAL_OFFSET",
    "AttributeAuthority",
    "MandateCertificateError",
    "MandateParty",
    "MandateTerms",
    "ParsedMandate",
    "action_role_uri",
    "parse_mandate_certificate",
]

ROLE_URI_PREFIX = "urn:dairi:action:"
SUBDELEGATED_ROLE_URI_PREFIX = "urn:dairi:subdelegated-action:"
SIGNATURE_ALGORITHM = "sha256_rsa"
OCSP_VALIDITY = timedelta(hours=1)
_PARSE_ERRORS = (ValueError, TypeError, KeyError, IndexError, OverflowError)


def action_role_uri(action: str, depth: int = 0) -> str:
    """The ``role`` attribute's roleName URI for an action granted at ``depth``:
    ``urn:dairi:action:bid`` for a representative's grant (depth 0),
    ``urn:dairi:subdelegated-action:bid`` for a sub-delegation (復代理, depth > 0)."""
    prefix = ROLE_URI_PREFIX if depth == 0 else SUBDELEGATED_ROLE_URI_PREFIX
    return prefix + quote(action, safe=":*")


def _dir_names(name: x509.Name) -> x509.GeneralNames:
    return x509.GeneralNames([x509.GeneralName(name="directory_name", value=name)])


def _target_name(target: str) -> x509.GeneralName:
    """A URI when the target has a scheme (``https://...``, ``urn:...``), else a DNS name."""
    if ":" in target:
        return x509.GeneralName(name="uniform_resource_identifier", value=target)
    return x509.GeneralName(name="dns_name", value=target)


def _ext(name: str, value: object, critical: bool = False) -> x509.Extension:
    return x509.Extension({"extn_id": name, "critical": critical, "extn_value": value})


@dataclass(frozen=True)
class ParsedMandate:
    """What a mandate AC states (nothing verified: see ``async_validate_ac``)."""

    der: bytes
    terms: MandateTerms
    serial_number: int  # the mandate's (an embedded form's own serial less the offset)
    issuer: bytes  # DER Name of the AA
    holder_issuer: bytes  # DER Name of the holder certificate's issuer
    holder_serial_number: int
    depth: int
    ancestors: tuple[bytes, ...]  # DER ACs in embedded form, root first; () if embedded
    targets: tuple[str, ...]  # targetName URIs / DNS names; () when not targeted

    @property
    def not_before(self) -> datetime:
        return self.terms.not_before

    @property
    def not_after(self) -> datetime:
        return self.terms.not_after

    @property
    def issuer_name(self) -> str:
        return x509.Name.load(self.issuer).human_friendly

    def is_held_by(self, certificate_der: bytes) -> bool:
        """Whether ``certificate_der`` is the holder (issuer name and serial match)."""
        cert = x509.Certificate.load(certificate_der)
        if cert.serial_number != self.holder_serial_number:
            return False
        issuer = cert.issuer
        # Byte-equal names are equal; otherwise RFC 5280 name matching (slower).
        return issuer.dump() == self.holder_issuer or issuer == x509.Name.load(self.holder_issuer)


def _extensions(info: cms.AttributeCertificateInfoV2) -> dict[str, x509.Extension]:
    found: dict[str, x509.Extension] = {}
    for ext in () if isinstance(info["extensions"], core.Void) else info["extensions"]:
        name = ext["extn_id"].native
        if name in found:
            raise ValueError(f"extension {name} appears twice")
        found[name] = ext
    return found


def _single_dir_name(names: x509.GeneralNames, what: str) -> x509.Name:
    if len(names) != 1 or names[0].name != "directory_name":
        raise ValueError(f"{what} must be exactly one directoryName")
    return names[0].chosen


def _targets(ext: x509.Extension | None) -> tuple[str, ...]:
    if ext is None:
        return ()
    return tuple(
        target.chosen.native
        for targets in ext["extn_value"].parsed
        for target in targets
        if target.name == "target_name"
    )


def _provenance_of(ac: cms.AttributeCertificateV2) -> x509.Extension | None:
    return _extensions(ac["ac_info"]).get(asn1.PROVENANCE_EXTENSION)


def parse_mandate_certificate(der: bytes, *, embedded_depth: int | None = None) -> ParsedMandate:
    """Parse a dairi mandate AC: a full one (with provenance), or with ``embedded_depth``
    the embedded form of an ancestor at that depth (no provenance, an embedded serial).
    Raises :class:`MandateCertificateError` (AC_MALFORMED)."""
    try:
        ac = cms.AttributeCertificateV2.load(bytes(der), strict=True)
        info = ac["ac_info"]
        if info["version"].native != "v2":
            raise ValueError("not a v2 attribute certificate")
        if ac["signature_algorithm"].dump() != info["signature"].dump():
            raise ValueError("inner and outer signature algorithms differ")
        holder = info["holder"]["base_certificate_id"]
        if isinstance(holder, core.Void):
            raise ValueError("the holder is not given as baseCertificateID")
        holder_issuer = _single_dir_name(holder["issuer"], "the holder's issuer")
        issuer = info["issuer"]
        if issuer.name != "v2_form" or isinstance(issuer.chosen["issuer_name"], core.Void):
            raise ValueError("the issuer is not a v2Form issuerName")
        aa_name = _single_dir_name(issuer.chosen["issuer_name"], "the AC issuer")
        terms = MandateTerms.from_attribute_certificate(ac)
        extensions = _extensions(info)
        serial_number = info["serial_number"].native
        if embedded_depth is not None:
            if asn1.PROVENANCE_EXTENSION in extensions:
                raise ValueError("an embedded ancestor carries a provenance of its own")
            if serial_number < EMBEDDED_SERIAL_OFFSET:
                raise ValueError("an embedded ancestor has a mandate's serial")
            return ParsedMandate(
                der=bytes(der),
                terms=terms,
                serial_number=serial_number - EMBEDDED_SERIAL_OFFSET,
                issuer=aa_name.untag().dump(),
                holder_issuer=holder_issuer.untag().dump(),
                holder_serial_number=holder["serial"].native,
                depth=embedded_depth,
                ancestors=(),
                targets=_targets(extensions.get("target_information")),
            )
        if asn1.PROVENANCE_EXTENSION not in extensions:
            raise ValueError("the provenance extension is missing")
        if serial_number >= EMBEDDED_SERIAL_OFFSET:
            raise ValueError("an embedded form is not a mandate AC of its own")
        provenance = extensions[asn1.PROVENANCE_EXTENSION]["extn_value"].parsed
        depth = provenance["depth"].native
        ancestors = tuple(a.dump() for a in provenance["ancestors"])
        if depth != len(ancestors):
            raise ValueError(f"depth {depth} but {len(ancestors)} ancestors")
        for ancestor in ancestors:
            # The ancestors' own contents are read when they are judged (delegation.verify);
            # here only their shape, cheaply: a deep parse would cost more than the chain.
            ac = cms.AttributeCertificateV2.load(ancestor, strict=True)
            ac["ac_info"]["serial_number"].native  # noqa: B018
        return ParsedMandate(
            der=bytes(der),
            terms=terms,
            serial_number=serial_number,
            issuer=aa_name.untag().dump(),
            holder_issuer=holder_issuer.untag().dump(),
            holder_serial_number=holder["serial"].native,
            depth=depth,
            ancestors=ancestors,
            targets=_targets(extensions.get("target_information")),
        )
    except MandateCertificateError as exc:
        raise MandateCertificateError(exc.message) from None
    except _PARSE_ERRORS as exc:
        raise MandateCertificateError(f"not a mandate attribute certificate: {exc}") from None


class AttributeAuthority:
    """The AA: issues mandate ACs and signs their CRL and OCSP responses.

    ``sign(data)`` returns an RSA PKCS#1 v1.5 SHA-256 signature over ``data`` by the key
    of ``certificate_der`` (in production ``lambda d: hsm.sign(pki.aa_key, d)``).
    ``ocsp_url`` / ``crl_url`` go into every AC's AIA and CRL distribution points.
    """

    def __init__(
        self, certificate_der: bytes, sign: Callable[[bytes], bytes], *, ocsp_url: str, crl_url: str
    ) -> None:
        self.certificate_der = bytes(certificate_der)
        self._sign = sign
        self.ocsp_url = ocsp_url
        self.crl_url = crl_url
        cert = x509.Certificate.load(self.certificate_der)
        public_key = pyca_x509.load_der_x509_certificate(self.certificate_der).public_key()
        if not isinstance(public_key, rsa.RSAPublicKey):
            raise MandateCertificateError("the AA key must be RSA", "AA_KEY_MISMATCH")
        self._public_key = public_key
        self._subject_der = cert.subject.dump()
        self._key_identifier: bytes | None = cert.key_identifier
        self._aa_issuer_der = cert.issuer.dump()
        self._aa_serial: int = cert.serial_number

    # -- signing ------------------------------------------------------------

    def _subject(self) -> x509.Name:
        return x509.Name.load(self._subject_der)

    def _signed(self, tbs: bytes) -> bytes:
        signature = self._sign(tbs)
        try:
            self._public_key.verify(signature, tbs, padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            raise MandateCertificateError(
                "the signing key does not match the AA certificate", "AA_KEY_MISMATCH"
            ) from None
        return signature

    def _authority_key_identifier(self) -> x509.AuthorityKeyIdentifier:
        # By the AA certificate's SKI. pyhanko-certvalidator compares the AKI with the
        # candidate AA certificate's SKI *extension*, so a computed key identifier
        # would never match a certificate without one: name that one by issuer+serial.
        if self._key_identifier is not None:
            return x509.AuthorityKeyIdentifier({"key_identifier": self._key_identifier})
        return x509.AuthorityKeyIdentifier(
            {
                "authority_cert_issuer": _dir_names(x509.Name.load(self._aa_issuer_der)),
                "authority_cert_serial_number": self._aa_serial,
            }
        )

    # -- issuance -----------------------------------------------------------

    def _issued_by_self(self, ac: cms.AttributeCertificateV2) -> bool:
        try:
            self._public_key.verify(
                ac["signature"].native, ac["ac_info"].dump(), padding.PKCS1v15(), hashes.SHA256()
            )
        except InvalidSignature:
            return False
        return (
            ac["signature_algorithm"]["algorithm"].native == SIGNATURE_ALGORITHM
            and _single_dir_name(ac["ac_info"]["issuer"].chosen["issuer_name"], "the AC issuer")
            .untag()
            .dump()
            == self._subject_der
        )

    def embedded_form(self, der: bytes, depth: int) -> bytes:
        """The form in which the mandate AC ``der`` (at ``depth``) is embedded in its
        descendants' provenance: the same AC without its provenance extension, with the
        serial ``EMBEDDED_SERIAL_OFFSET + serial``, signed by the AA (deterministic, so
        the same bytes each time). An AC already in embedded form is returned as given.

        The AA signs anew only what it signed before: raises
        :class:`MandateCertificateError` (PROVENANCE_INCONSISTENT) for a full AC that is
        not this AA's or not at ``depth``, AC_MALFORMED for one that is no mandate AC.
        """
        try:
            ac = cms.AttributeCertificateV2.load(bytes(der), strict=True)
            is_full = _provenance_of(ac) is not None
        except _PARSE_ERRORS:
            raise MandateCertificateError("not a mandate attribute certificate") from None
        if not is_full:
            parse_mandate_certificate(der, embedded_depth=depth)
            return bytes(der)
        mandate = parse_mandate_certificate(der)
        if mandate.depth != depth:
            raise MandateCertificateError(
                f"ancestor {depth} is not at depth {depth}", "PROVENANCE_INCONSISTENT"
            )
        if not self._issued_by_self(ac):
            raise MandateCertificateError(
                f"ancestor {depth} was not issued by this AA", "PROVENANCE_INCONSISTENT"
            )
        info = ac["ac_info"].copy()
        info["serial_number"] = EMBEDDED_SERIAL_OFFSET + mandate.serial_number
        info["extensions"] = [
            ext for ext in info["extensions"] if ext["extn_id"].native != asn1.PROVENANCE_EXTENSION
        ]
        tbs = info.dump(force=True)
        return cms.AttributeCertificateV2(
            {
                "ac_info": cms.AttributeCertificateInfoV2.load(tbs),
                "signature_algorithm": {"algorithm": SIGNATURE_ALGORITHM},
                "signature": self._signed(tbs),
            }
        ).dump()

    def issue(
        self,
        terms: MandateTerms,
        holder_certificate_der: bytes,
        *,
        serial_number: int,
        ancestors: Sequence[bytes] = (),
        depth: int = 0,
        targets: Sequence[str] = (),
    ) -> bytes:
        """A DER AttributeCertificateV2 certifying ``terms`` for the holder certificate.

        ``ancestors`` are the DER ACs above this one, root first, full or already in
        embedded form (each is embedded bare: see ``embedded_form``), and ``depth`` must
        be their number (0 for a representative's grant; > 0 gives sub-delegation roles).
        ``targets`` (URIs or DNS names) restrict the AC to named relying parties
        (critical targetInformation).
        """
        check_serial(serial_number, "serial_number")
        if serial_number >= EMBEDDED_SERIAL_OFFSET:
            raise MandateCertificateError(
                "serial_number is in the embedded forms' range", "MANDATE_TERMS_INVALID"
            )
        try:
            holder = x509.Certificate.load(bytes(holder_certificate_der), strict=True)
            holder_issuer, holder_serial = holder.issuer, holder.serial_number
        except _PARSE_ERRORS:
            raise MandateCertificateError(
                "the holder certificate is not DER X.509", "HOLDER_CERTIFICATE_MALFORMED"
            ) from None
        if type(depth) is not int or depth != len(ancestors):
            raise MandateCertificateError(
                f"depth {depth} does not match {len(ancestors)} ancestors",
                "PROVENANCE_INCONSISTENT",
            )
        embedded = [self.embedded_form(ancestor, index) for index, ancestor in enumerate(ancestors)]
        roles = cms.SetOfRoleSyntax(
            [
                cms.RoleSyntax(
                    {
                        "role_name": x509.GeneralName(
                            name="uniform_resource_identifier", value=action_role_uri(action, depth)
                        )
                    }
                )
                for action in terms.actions
            ]
        )
        extensions = [
            _ext("authority_key_identifier", self._authority_key_identifier()),
            _ext(
                "authority_information_access",
                [
                    {
                        "access_method": "ocsp",
                        "access_location": x509.GeneralName(
                            name="uniform_resource_identifier", value=self.ocsp_url
                        ),
                    }
                ],
            ),
            _ext(
                "crl_distribution_points",
                [
                    {
                        "distribution_point": {
                            "full_name": [
                                x509.GeneralName(
                                    name="uniform_resource_identifier", value=self.crl_url
                                )
                            ]
                        }
                    }
                ],
            ),
        ]
        if isinstance(targets, str) or not all(
            isinstance(t, str) and t and t.isascii() and not any(c.isspace() for c in t)
            for t in targets
        ):
            raise MandateCertificateError(
                "targets must be URIs or DNS names", "MANDATE_TERMS_INVALID"
            )
        if targets:
            # RFC 5755 §4.3.2: targetInformation MUST be critical.
            extensions.append(
                _ext(
                    "target_information",
                    SequenceOfTargets(
                        [[Target(name="target_name", value=_target_name(t)) for t in targets]]
                    ),
                    critical=True,
                )
            )
        extensions.append(
            _ext(
                asn1.PROVENANCE_EXTENSION,
                asn1.Provenance(
                    {
                        "depth": depth,
                        "ancestors": [cms.AttributeCertificateV2.load(a) for a in embedded],
                    }
                ),
            )
        )
        info = cms.AttributeCertificateInfoV2(
            {
                "version": "v2",
                "holder": {
                    "base_certificate_id": {
                        "issuer": _dir_names(holder_issuer),
                        "serial": holder_serial,
                    }
                },
                "issuer": cms.AttCertIssuer(
                    name="v2_form", value={"issuer_name": _dir_names(self._subject())}
                ),
                "signature": {"algorithm": SIGNATURE_ALGORITHM},
                "serial_number": serial_number,
                "att_cert_validity_period": {
                    "not_before_time": terms.not_before,
                    "not_after_time": terms.not_after,
                },
                "attributes": [
                    {"type": "role", "values": roles},
                    {"type": asn1.MANDATE_ATTRIBUTE, "values": [terms.to_asn1()]},
                ],
                "extensions": extensions,
            }
        )
        tbs = info.dump()
        return cms.AttributeCertificateV2(
            {
                "ac_info": info,
                "signature_algorithm": {"algorithm": SIGNATURE_ALGORITHM},
                "signature": self._signed(tbs),
            }
        ).dump()

    # -- status -------------------------------------------------------------

    def crl(
        self,
        revoked: Iterable[tuple[int, datetime, str]],
        *,
        this_update: datetime,
        next_update: datetime,
        number: int,
    ) -> bytes:
        """A DER AC CRL: (serial, revocation time, reason) entries, signed by the AA.

        Reasons are asn1crypto's CRLReason names, e.g. ``privilege_withdrawn``,
        ``affiliation_changed``, ``cessation_of_operation`` (``unspecified`` is written
        without a reason code). It carries cRLNumber, authorityKeyIdentifier and a
        critical issuingDistributionPoint naming ``crl_url`` with
        onlyContainsAttributeCerts. Raises :class:`MandateCertificateError`
        (REVOCATION_REASON_INVALID, MANDATE_TERMS_INVALID for a bad serial or number).
        """
        return build_crl(
            revoked,
            issuer_der=self._subject_der,
            authority_key_identifier=self._authority_key_identifier(),
            crl_url=self.crl_url,
            sign=self._signed,
            signature_algorithm=SIGNATURE_ALGORITHM,
            this_update=this_update,
            next_update=next_update,
            number=number,
        )

    def ocsp_response(
        self,
        request_der: bytes,
        status_of: Callable[[int], tuple[str, datetime | None, str | None]],
        *,
        now: datetime,
        validity: timedelta = OCSP_VALIDITY,
        echo_nonce: bool = True,
    ) -> bytes:
        """A DER OCSP response (RFC 6960) for AC serials, signed by the AA itself.

        ``status_of(serial)`` gives ("good" | "revoked" | "unknown", revocation time,
        CRL reason name). CertIDs must name the AA (hash of its subject and key, SHA-1
        or SHA-256, as pyhanko-certvalidator sends); others get ``unauthorized``,
        garbage ``malformedRequest``. A request nonce is echoed unless ``echo_nonce``
        is false: an answer meant to be served again to other requests carries none
        (RFC 8954 §2.1 lets a responder leave it out).
        """
        return build_ocsp_response(
            request_der,
            status_of,
            aa_certificate_der=self.certificate_der,
            sign=self._signed,
            signature_algorithm=SIGNATURE_ALGORITHM,
            now=now,
            validity=validity,
            echo_nonce=echo_nonce,
        )
