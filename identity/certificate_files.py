"""What dairi reads from a certificate, as one JSON-serialisable dict (``dairi cert inspect``).

Pure functions over bytes. The result may hold personal data (JPKI basic four
items): show it to the operator who asked, never log it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from asn1crypto import pem
from asn1crypto import x509 as asn1_x509
from cryptography import x509

from dairi import DairiError
from identity.profiles import (
    DEFAULT_POLICY_OIDS,
    CertificateKind,
    CertificateMalformed,
    PolicyOids,
    certificate_kind,
    jpki_personal_data,
    policy_oids,
    registered_corporation,
)

# keyUsage bits in RFC 5280 order: cryptography's attribute, the RFC 5280 name.
KEY_USAGE_NAMES = (
    ("digital_signature", "digitalSignature"),
    ("content_commitment", "nonRepudiation"),
    ("key_encipherment", "keyEncipherment"),
    ("data_encipherment", "dataEncipherment"),
    ("key_agreement", "keyAgreement"),
    ("key_cert_sign", "keyCertSign"),
    ("crl_sign", "cRLSign"),
    ("encipher_only", "encipherOnly"),
    ("decipher_only", "decipherOnly"),
)


def load_certificate(data: bytes) -> bytes:
    """DER of the certificate in ``data`` (PEM or DER; with PEM, the first
    ``CERTIFICATE`` block), every field and extension readable. Raises
    :class:`CertificateMalformed` otherwise."""
    der = data
    if pem.detect(data):
        try:
            blocks = [
                body for kind, _, body in pem.unarmor(data, multiple=True) if kind == "CERTIFICATE"
            ]
        except (ValueError, TypeError) as exc:
            raise CertificateMalformed("the PEM armour is broken") from exc
        if not blocks:
            raise CertificateMalformed("no CERTIFICATE block in the PEM data")
        der = blocks[0]
    try:
        # Both libraries parse extensions lazily: read every one now, so that a
        # malformed extension is refused here, before any state changes, and not
        # later by whichever reader first touches it.
        x509.load_der_x509_certificate(der).extensions  # noqa: B018
        asn1_x509.Certificate.load(der, strict=True).native  # noqa: B018
    except (ValueError, TypeError, x509.DuplicateExtension) as exc:
        raise CertificateMalformed("not an X.509 certificate (PEM or DER)") from exc
    return der


def describe_certificate(der: bytes, policies: PolicyOids = DEFAULT_POLICY_OIDS) -> dict[str, Any]:
    """What dairi reads from ``der``: common fields, plus the JPKI personal data or
    the registered corporation depending on ``kind`` (by the ``policies`` configured).

    Raises :class:`CertificateMalformed`, ``CERTIFICATE_PROFILE_INVALID`` when a
    JPKI/registration certificate breaks its profile, and
    ``CORPORATE_NUMBER_INVALID`` when its 会社法人等番号 is malformed.
    """
    try:
        cert = x509.load_der_x509_certificate(der)
        parsed = asn1_x509.Certificate.load(der, strict=True)
        kind = certificate_kind(parsed, policies)
        description: dict[str, Any] = {
            "kind": kind.value,
            "subject": _name(cert.subject),
            "issuer": _name(cert.issuer),
            "serial_number": format(cert.serial_number, "x"),
            "not_before": _iso(cert.not_valid_before_utc),
            "not_after": _iso(cert.not_valid_after_utc),
            "policies": list(policy_oids(parsed)),
            "key_usage": _key_usage(cert),
        }
        if kind is CertificateKind.JPKI_SIGN:
            description.update(_personal_fields(parsed))
        elif kind is CertificateKind.CORPORATE_REGISTRATION:
            description.update(_corporation_fields(parsed))
    except DairiError:
        raise  # profile and 法人番号 errors keep their own codes
    except (ValueError, TypeError) as exc:
        raise CertificateMalformed("not an X.509 certificate (DER)") from exc
    return description


def _personal_fields(cert: asn1_x509.Certificate) -> dict[str, Any]:
    data = jpki_personal_data(cert)
    birth = data.birth_date
    return {
        "name": data.name,
        "sex": data.sex,
        "birth_date": birth.value.isoformat() if birth and birth.value else None,
        "birth_date_raw": birth.raw if birth else None,
        "birth_era": birth.era if birth else None,
        "address": data.address,
        "name_substitute_flags": data.name_flags,
        "address_substitute_flags": data.address_flags,
    }


def _corporation_fields(cert: asn1_x509.Certificate) -> dict[str, Any]:
    info = registered_corporation(cert)
    return {
        "corporate_name": info.corporate_name,
        "registered_number": info.registered_number,
        "corporate_number": info.corporate_number,
        "head_office_address": info.head_office_address,
        "representative_name": info.representative_name,
        "representative_title": info.representative_title,
        "registry_office": info.registry_office,
        "registrar": info.registrar,
        "registration_policies": list(info.policies),
        "other_fields": {str(tag): text for tag, text in sorted(info.other_fields.items())},
    }


def _name(name: x509.Name) -> str:
    """RFC 4514 escaping, in certificate order (``C=JP, O=…, CN=…``), text kept as is."""
    return ", ".join(rdn.rfc4514_string() for rdn in name.rdns)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _key_usage(cert: x509.Certificate) -> list[str]:
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return []
    found = []
    for attribute, label in KEY_USAGE_NAMES:
        if attribute in {"encipher_only", "decipher_only"} and not usage.key_agreement:
            continue  # cryptography refuses to read these without keyAgreement
        if getattr(usage, attribute):
            found.append(label)
    return found
