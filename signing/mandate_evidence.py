"""What a signature made under a mandate carries (DESIGN §5, §6).

The service (``app``) gathers it from storage; the signing layer (:mod:`signing.pades`)
puts it into the document: the leaf mandate AC in the CMS ``signer-attributes-v2``
certified attributes, the attribute authority's certificate among the CMS
certificates, the AC's revocation data in the DSS at B-LT/B-LTA, the signature
policy identifier, and the grant evidence as embedded files covered by the
signature.
"""

from __future__ import annotations

from dataclasses import dataclass

# The project's arc (DESIGN §5): .3.1 is the policy of signatures made under a mandate.
MANDATE_SIGNATURE_POLICY_OID = "2.25.320070894866931714170245613787843122496.3.1"


@dataclass(frozen=True)
class EvidenceFile:
    """One file of grant evidence, embedded in the PDF before it is signed."""

    name: str  # file name shown by a reader, e.g. "mandate-0-instruction.json"
    data: bytes
    mime_type: str  # e.g. "application/json", "application/pkcs7-signature"
    description: str  # shown beside the file; says what it is and for which hop
    # PDF 2.0 / PDF/A-3 /AFRelationship: Data, Source, Supplement …
    relationship: str = "Supplement"


@dataclass(frozen=True)
class MandateStamp:
    """The visible stamp's fields, in Japanese (受任者, 委任者, 委任事項, 案件, 日時)."""

    agent: str
    principal: str
    actions: str
    case: str
    signed_at: str
    page: int = 0  # zero-based page the stamp goes on


@dataclass(frozen=True)
class MandateEvidence:
    """The mandate a signature is made under, as DER and files."""

    leaf_ac_der: bytes  # the leaf AttributeCertificateV2 (it carries its ancestors)
    aa_certificate_der: bytes  # the attribute authority's certificate
    aa_chain_der: tuple[bytes, ...]  # the AA certificate's issuers, root last
    # Revocation data for the leaf AC (the AA's CRL, and/or an OCSP response from
    # the AA's responder), DER, for the DSS at B-LT/B-LTA.
    ac_crls_der: tuple[bytes, ...] = ()
    ac_ocsp_der: tuple[bytes, ...] = ()
    files: tuple[EvidenceFile, ...] = ()
    stamp: MandateStamp | None = None


def evidence_file_names(depth: int) -> tuple[str, str, str]:
    """The embedded files of hop ``depth`` (0: the representative's grant): the grant
    instruction (RFC 8785 JSON), its detached CMS signature, and the hop's AC (DER).
    A verifier finds a hop's evidence under these names."""
    stem = f"mandate-{depth}"
    return (f"{stem}-instruction.json", f"{stem}-instruction.p7s", f"{stem}-ac.der")


# The signature policy of MANDATE_SIGNATURE_POLICY_OID, as a document whose SHA-256
# the signature-policy-identifier attribute carries (EN 319 122-1 §5.2.9.1,
# SignaturePolicyId with sigPolicyHash). The "implied" form (sigPolicyImplied, NULL)
# was not chosen: it names no policy at all, so a verifier could not tell a
# signature under a mandate from any other; the hash binds the OID to this text,
# which a relying party can read here (and in the README) and hash itself.
MANDATE_SIGNATURE_POLICY_DOCUMENT = (
    "dairi signature policy 2.25.320070894866931714170245613787843122496.3.1\n"
    "Signature made under a mandate (電子委任状), version 2.\n"
    "1. The signer is the holder of the mandate attribute certificate (RFC 5755) that\n"
    "   the signature certifies: in the CMS signer-attributes-v2 certified attributes\n"
    "   (PAdES), or in SignerRoleV2/CertifiedRolesV2 (XAdES). The attribute authority's\n"
    "   certificate travels with it: among the CMS certificates (PAdES), in KeyInfo\n"
    "   (XAdES).\n"
    "2. The mandate chain (the leaf AC and the ancestors in its provenance extension)\n"
    "   was judged valid, unrevoked and covering the signature's purpose when the\n"
    "   signature activation data was issued and again when the signature was made.\n"
    "3. The grant evidence of each hop (the instruction, its CMS signature, the AC) is\n"
    "   covered by the signature: embedded files in the signed revision of the PDF\n"
    "   (PAdES), or ds:Object elements each with its own ds:Reference (XAdES).\n"
    "4. At B-LT and B-LTA the validation data holds the AC's revocation data and the\n"
    "   attribute authority certificate's: in the DSS (PAdES), in CertificateValues and\n"
    "   RevocationValues (XAdES).\n"
).encode()
