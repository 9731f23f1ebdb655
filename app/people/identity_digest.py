"""What dairi keeps of the JPKI signing certificate that proved who a person is
(issue 9 items 1 and 7).

The four basic items (name, birth date, sex, address) are proven once, at
enrolment. Kept are the name, the certificate's hash, issuer, serial, validity,
a redacted status reference (to see its revocation later) and an HMAC-SHA256 of
the four items under a secret key that never leaves the HSM — enough to tell
whether a reissued card names the same person, and useless for learning the
items. The certificate itself and the items are kept only with
``keep_personal_data``.
"""

from __future__ import annotations

import hmac
import json
from dataclasses import dataclass

from asn1crypto import x509 as asn1_x509
from cryptography import x509

from app.people.models import Person
from hsm import Hsm
from identity.profiles import JpkiPersonalData, basic_items_document, jpki_personal_data
from identity.validation import ValidatedCertificate

# The label of the HMAC key on the token (created on first need).
IDENTITY_KEY_LABEL = "dairi:identity-digest"


@dataclass(frozen=True)
class IdentityDigest:
    """HMAC-SHA256 (hex) of the four basic items, and the id of the HSM key that made it."""

    key_id: str
    digest: str

    def matches(self, other: IdentityDigest) -> bool:
        return self.key_id == other.key_id and hmac.compare_digest(self.digest, other.digest)


def identity_digest(
    hsm: Hsm, items: JpkiPersonalData, *, key_id: str | None = None
) -> IdentityDigest:
    """The keyed digest of ``items`` under the HSM key ``key_id`` (default: the current
    one, generated on first need). Raises :class:`hsm.HsmError` subclasses."""
    key_id = key_id or hsm.secret_key_id(IDENTITY_KEY_LABEL)
    mac = hsm.hmac_sha256(IDENTITY_KEY_LABEL, key_id, basic_items_document(items))
    return IdentityDigest(key_id, mac.hex())


def enrolled_digest(hsm: Hsm, person: Person) -> IdentityDigest | None:
    """The digest proven at ``person``'s enrolment; for a row enrolled before digests
    were kept, computed from its stored signing certificate. None if neither exists."""
    if person.identity_digest and person.identity_key_id:
        return IdentityDigest(person.identity_key_id, person.identity_digest)
    if person.signing_certificate_der:
        items = jpki_personal_data(asn1_x509.Certificate.load(person.signing_certificate_der))
        return identity_digest(hsm, items)
    return None


def bind_signing_certificate(
    person: Person,
    signed: ValidatedCertificate,
    digest: IdentityDigest,
    *,
    keep_personal_data: bool,
) -> None:
    """Record on ``person`` the signing certificate ``signed`` (validated for JPKI
    signing) and the digest of its items: the certificate and the items themselves
    only when ``keep_personal_data``; otherwise what was kept before is cleared."""
    assert signed.personal_data is not None  # the JPKI_SIGN profile always parses it
    certificate = x509.load_der_x509_certificate(signed.der)
    person.signing_certificate_sha256 = signed.sha256
    person.signing_certificate_issuer = certificate.issuer.rfc4514_string()
    person.signing_certificate_serial = format(signed.serial_number, "x")
    person.signing_certificate_not_before = signed.not_before
    person.signing_certificate_not_after = signed.not_after
    person.signing_certificate_status_ref = signed.status_reference()
    person.identity_key_id, person.identity_digest = digest.key_id, digest.digest
    person.signing_certificate_der = signed.der if keep_personal_data else None
    items = signed.personal_data
    person.personal_data = (
        json.dumps(
            {
                "birth_date": items.birth_date.text() if items.birth_date else None,
                "sex": items.sex,
                "address": items.address,
            },
            ensure_ascii=False,
        )
        if keep_personal_data
        else None
    )
