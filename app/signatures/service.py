"""Signing with a stored credential, and the record every signature leaves."""

from __future__ import annotations

from sqlalchemy.orm import Session

from app.audit_trail.log import AuditLog
from app.context import ServiceContext
from app.credentials.service import CredentialService
from app.signatures.models import SignatureFormat, SignatureRecord
from signing import PadesResult, PadesSpec


class SignatureService:
    def __init__(self, session: Session, context: ServiceContext) -> None:
        self._session = session
        self._context = context
        self._credentials = CredentialService(session, context.hsm, context.dev_pki)

    def sign_pdf(
        self, credential_name: str, pdf: bytes, spec: PadesSpec
    ) -> tuple[PadesResult, SignatureRecord]:
        """Sign ``pdf`` with the named credential and record the signature.

        Nothing is written unless the signature was made; the record and its audit
        event are written in the caller's unit of work, together or not at all.
        """
        credential = self._credentials.get(credential_name)
        signing_credential = self._credentials.signing_credential(credential)
        result = self._context.pades_signer.sign(pdf, signing_credential, spec)
        ref = signing_credential.key_ref
        record = SignatureRecord(
            credential_id=credential.id,
            token_label=ref.token_label,
            key_id=ref.key_id,
            key_version=ref.version,
            format=SignatureFormat.PADES.value,
            level=result.level.value,
            document_sha256=result.document_sha256,
            signed_document_sha256=result.signed_document_sha256,
        )
        self._session.add(record)
        self._session.flush()  # its id now; the caller's unit of work commits it
        # The operator's tool signs outside the policy gate (no card proof, no mandate):
        # audited as such, in the same unit of work as the record.
        AuditLog(self._session).append(
            "signature:operator:made",
            actor="operator",
            subject=record.id,
            principal=credential.corporate_number,
            details={
                "credential": credential.name,
                "format": record.format,
                "level": record.level,
                "document_sha256": record.document_sha256,
                "signed_document_sha256": record.signed_document_sha256,
            },
        )
        return result, record
