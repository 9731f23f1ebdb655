"""The attribute authority's revocation information: its AC CRL and OCSP responses.

Used through :class:`delegation.certificates.AttributeAuthority` (``crl`` and
``ocsp_response``), which supplies the AA's names and its checked signing function.

CRL: pyhanko-certvalidator only accepts it if the AA certificate's keyUsage (when
present) includes cRLSign. The issuing distribution point marks it as a CRL of
attribute certificates (onlyContainsAttributeCerts), so no one can take it for a PKC CRL.

OCSP (RFC 6960): pyhanko-certvalidator asks about an AC with a CertID whose
issuerNameHash is the hash of the AC's issuer name (the AA certificate's subject) and
whose issuerKeyHash is the hash of the AA's public key (SHA-1 by default; SHA-256 is
accepted too), and it accepts a response for an AC only when signed by the AA
certificate itself (no delegated responders for ACs; no keyUsage or EKU checked). So
the AA answers, responder ID by key hash, with its certificate attached.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta

from asn1crypto import core, crl, ocsp, x509

from delegation.mandate_terms import MandateCertificateError

MAX_SERIAL = 2**159  # RFC 5280 §4.1.2.2 / RFC 5755 §4.2.5: positive, at most 20 octets
# An ancestor embedded in a descendant's provenance is its mandate's AC without provenance,
# under serial EMBEDDED_SERIAL_OFFSET + the mandate's serial (delegation.certificates).
EMBEDDED_SERIAL_OFFSET = 2**158
# CRL reasons an AA may publish ('remove_from_crl' is for delta CRLs only).
CRL_REASONS = frozenset(crl.CRLReason._map.values()) - {"remove_from_crl"}
MAX_REQUESTS = 64
MAX_NONCE = 128  # RFC 8954 asks for at most 32 octets; be lenient, but bounded
STATES = frozenset({"good", "revoked", "unknown"})
_PARSE_ERRORS = (ValueError, TypeError, KeyError, IndexError, OverflowError)


def utc_time(moment: datetime) -> x509.Time:
    """RFC 5280 Time: UTCTime before 2050, GeneralizedTime after; whole seconds, UTC."""
    if moment.tzinfo is None:
        raise ValueError("an aware datetime is required")
    moment = moment.astimezone(UTC).replace(microsecond=0)
    return x509.Time(name="utc_time" if moment.year < 2050 else "general_time", value=moment)


def check_serial(serial: int, what: str) -> int:
    """``serial`` if it is a positive integer of at most 20 octets."""
    if type(serial) is not int or not 0 < serial < MAX_SERIAL:
        raise MandateCertificateError(
            f"{what} must be a positive integer of at most 20 octets", "MANDATE_TERMS_INVALID"
        )
    return serial


def mandate_serial(serial: int) -> int:
    """The serial of the mandate whose AC has serial ``serial`` (its full or its embedded
    form): one mandate, one status."""
    return serial - EMBEDDED_SERIAL_OFFSET if serial >= EMBEDDED_SERIAL_OFFSET else serial


def build_crl(
    revoked: Iterable[tuple[int, datetime, str]],
    *,
    issuer_der: bytes,
    authority_key_identifier: x509.AuthorityKeyIdentifier,
    crl_url: str,
    sign: Callable[[bytes], bytes],
    signature_algorithm: str,
    this_update: datetime,
    next_update: datetime,
    number: int,
) -> bytes:
    """A DER X.509 v2 CRL of attribute certificates issued by the AA named ``issuer_der``."""
    if type(number) is not int or not 0 <= number < MAX_SERIAL:
        raise MandateCertificateError("the CRL number must be in 0..2^159", "MANDATE_TERMS_INVALID")
    entries = []
    for serial, revoked_at, reason in sorted(revoked, key=lambda entry: entry[0]):
        if reason not in CRL_REASONS:
            raise MandateCertificateError(
                f"unknown revocation reason {reason!r}", "REVOCATION_REASON_INVALID"
            )
        entry = crl.RevokedCertificate(
            {
                "user_certificate": check_serial(serial, "serial"),
                "revocation_date": utc_time(revoked_at),
            }
        )
        if reason != "unspecified":  # RFC 5280 §5.3.1: omit rather than say unspecified
            entry["crl_entry_extensions"] = [
                {"extn_id": "crl_reason", "extn_value": crl.CRLReason(reason)}
            ]
        entries.append(entry)
    tbs = crl.TbsCertList(
        {
            "version": "v2",
            "signature": {"algorithm": signature_algorithm},
            "issuer": x509.Name.load(issuer_der),
            "this_update": utc_time(this_update),
            "next_update": utc_time(next_update),
            "crl_extensions": [
                {"extn_id": "crl_number", "extn_value": number},
                {"extn_id": "authority_key_identifier", "extn_value": authority_key_identifier},
                {
                    "extn_id": "issuing_distribution_point",
                    "critical": True,
                    "extn_value": crl.IssuingDistributionPoint(
                        {
                            "distribution_point": {
                                "full_name": [
                                    x509.GeneralName(
                                        name="uniform_resource_identifier", value=crl_url
                                    )
                                ]
                            },
                            "only_contains_attribute_certs": True,
                        }
                    ),
                },
            ],
        }
    )
    if entries:  # RFC 5280 §5.1.2.6: absent when nothing is revoked
        tbs["revoked_certificates"] = entries
    return crl.CertificateList(
        {
            "tbs_cert_list": tbs,
            "signature_algorithm": {"algorithm": signature_algorithm},
            "signature": sign(tbs.dump()),
        }
    ).dump()


def _unsuccessful(status: str) -> bytes:
    return ocsp.OCSPResponse({"response_status": status}).dump()


def _read_request(request_der: bytes) -> tuple[list[ocsp.CertId], bytes | None]:
    request = ocsp.OCSPRequest.load(bytes(request_der), strict=True)
    tbs = request["tbs_request"]
    cert_ids = [r["req_cert"] for r in tbs["request_list"]]
    if not 1 <= len(cert_ids) <= MAX_REQUESTS:
        raise ValueError("between 1 and 64 requests are answered")
    nonce = None
    if not isinstance(tbs["request_extensions"], core.Void):
        for ext in tbs["request_extensions"]:
            if ext["extn_id"].native == "nonce":
                nonce = ext["extn_value"].contents
    if nonce is not None and not 0 < len(nonce) <= MAX_NONCE:
        raise ValueError("bad nonce length")
    for cert_id in cert_ids:
        cert_id.native  # noqa: B018 - parse now, inside the caller's error handling
    return cert_ids, nonce


def _single_response(
    cert_id: ocsp.CertId,
    state: str,
    revoked_at: datetime | None,
    reason: str | None,
    now: datetime,
    validity: timedelta,
) -> ocsp.SingleResponse:
    if state not in STATES:
        raise ValueError(f"status_of returned {state!r}")
    if state == "revoked":
        if revoked_at is None or revoked_at.tzinfo is None:
            raise ValueError("a revoked status needs its (aware) revocation time")
        info: dict[str, object] = {
            "revocation_time": revoked_at.astimezone(UTC).replace(microsecond=0)
        }
        if reason is not None:
            if reason not in CRL_REASONS:
                raise MandateCertificateError(
                    f"unknown revocation reason {reason!r}", "REVOCATION_REASON_INVALID"
                )
            info["revocation_reason"] = reason
        status = ocsp.CertStatus(name="revoked", value=info)
    else:
        status = ocsp.CertStatus(name=state, value=core.Null())
    return ocsp.SingleResponse(
        {
            "cert_id": cert_id,
            "cert_status": status,
            "this_update": now,
            "next_update": now + validity,
        }
    )


def build_ocsp_response(
    request_der: bytes,
    status_of: Callable[[int], tuple[str, datetime | None, str | None]],
    *,
    aa_certificate_der: bytes,
    sign: Callable[[bytes], bytes],
    signature_algorithm: str,
    now: datetime,
    validity: timedelta,
    echo_nonce: bool = True,
) -> bytes:
    """Answer ``request_der`` for the AA of ``aa_certificate_der`` (see module docstring);
    the request's nonce is echoed when ``echo_nonce``. An embedded form's serial is
    answered with its mandate's status (``status_of`` is asked for the mandate's serial)."""
    try:
        cert_ids, nonce = _read_request(request_der)
    except _PARSE_ERRORS:
        return _unsuccessful("malformed_request")
    aa = x509.Certificate.load(aa_certificate_der)
    known = {
        algorithm: (getattr(aa.subject, algorithm), getattr(aa.public_key, algorithm))
        for algorithm in ("sha1", "sha256")
    }
    for cert_id in cert_ids:
        algorithm = cert_id["hash_algorithm"]["algorithm"].native
        if algorithm not in known:
            return _unsuccessful("malformed_request")
        if (cert_id["issuer_name_hash"].native, cert_id["issuer_key_hash"].native) != known[
            algorithm
        ]:
            return _unsuccessful("unauthorized")
    if now.tzinfo is None:
        raise ValueError("now must be an aware datetime")
    now = now.astimezone(UTC).replace(microsecond=0)
    responses = [
        _single_response(
            cert_id, *status_of(mandate_serial(cert_id["serial_number"].native)), now, validity
        )
        for cert_id in cert_ids
    ]
    data = ocsp.ResponseData(
        {
            "responder_id": ocsp.ResponderId(name="by_key", value=aa.public_key.sha1),
            "produced_at": now,
            "responses": responses,
        }
    )
    if nonce is not None and echo_nonce:
        data["response_extensions"] = [
            {
                "extn_id": "nonce",
                "critical": False,
                "extn_value": core.ParsableOctetString(nonce),
            }
        ]
    basic = ocsp.BasicOCSPResponse(
        {
            "tbs_response_data": data,
            "signature_algorithm": {"algorithm": signature_algorithm},
            "signature": sign(data.dump()),
            "certs": [aa],
        }
    )
    return ocsp.OCSPResponse(
        {
            "response_status": "successful",
            "response_bytes": {"response_type": "basic_ocsp_response", "response": basic},
        }
    ).dump()
