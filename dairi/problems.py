"""The error catalogue: every code dairi answers with, each defined once.

Each entry gives the code's HTTP status and a one-line description. The API
answers a refusal with the entry's status (no guessing from the code's spelling
and no default), publishes the catalogue at ``GET /api/v1/problems`` and points
each problem document's ``type`` at the code's entry there. The command line
prints the same codes (``error CODE: message``, exit 2).

A code that is not here is a bug: :func:`problem` raises
:class:`UnknownProblemCode`, the API answers it as a 500 ``INTERNAL_ERROR`` and
``tests/test_problems_catalogue.py`` finds every code literal in the source that
is missing. Add the code here when you add a raise.

Domain-free, so every package (hsm, identity, delegation, signing, audit, devpki)
can name its codes from it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

__all__ = ["CATALOGUE", "Problem", "UnknownProblemCode", "problem"]

# Words kept upper case when a title is made from a code.
_ACRONYMS = frozenset(
    {"AA", "AC", "CSC", "HSM", "HTTP", "ID", "JSON", "PDF", "PIN", "PKI", "URI", "XML"}
)


@dataclass(frozen=True)
class Problem:
    """One catalogued code: its HTTP status, a short title and a one-line description."""

    code: str
    status: int
    description: str

    @property
    def title(self) -> str:
        """A short, stable summary made from the code (RFC 9457 §3.1.3): ``Token expired``."""
        words = [w if w in _ACRONYMS else w.lower() for w in self.code.split("_")]
        return " ".join(
            [words[0].capitalize() if words[0] not in _ACRONYMS else words[0], *words[1:]]
        )

    @property
    def retryable(self) -> bool:
        """429 and 503: the client may retry after the Retry-After the API sends."""
        return self.status in (429, 503)


class UnknownProblemCode(LookupError):
    """A code that is not in the catalogue (a programming error, never the caller's)."""


class _Catalogue(Mapping[str, Problem]):
    """Code → :class:`Problem`; refuses a code defined twice."""

    def __init__(self, *entries: tuple[str, int, str]) -> None:
        self._entries: dict[str, Problem] = {}
        for code, status, description in entries:
            if code in self._entries:
                raise ValueError(f"problem code {code} is defined twice")
            self._entries[code] = Problem(code, status, description)

    def __getitem__(self, code: str) -> Problem:
        return self._entries[code]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)


CATALOGUE = _Catalogue(
    # -- requests the service cannot read (app.http) ---------------------------------
    ("BAD_REQUEST", 400, "The request is not well formed (e.g. a body that is not JSON)."),
    (
        "BODY_UNREADABLE",
        400,
        "The request body could not be read, or ended before its Content-Length.",
    ),
    ("JSON_TOO_DEEP", 400, "The JSON body nests deeper than the service reads (32 levels)."),
    ("REQUEST_TIMEOUT", 408, "The request body did not arrive in time."),
    ("PAYLOAD_TOO_LARGE", 413, "The request body is larger than this endpoint accepts."),
    ("UNSUPPORTED_MEDIA_TYPE", 415, "The body is not in a media type the endpoint accepts."),
    (
        "VALIDATION_FAILED",
        422,
        "A field of the request is missing or invalid; `errors` lists the messages by field.",
    ),
    ("REQUEST_MALFORMED", 400, "Input that cannot be decoded, such as bad base64 (command line)."),
    ("NOT_A_TOKEN", 400, "Only a bearer token has a session to end; API clients have none."),
    # -- HTTP errors raised by the framework (status names of werkzeug's exceptions) ---
    ("UNAUTHORIZED", 401, "The request needs HTTP authentication."),
    ("FORBIDDEN", 403, "The caller's roles or corporations do not allow this request."),
    ("NOT_FOUND", 404, "No resource at this URL."),
    ("METHOD_NOT_ALLOWED", 405, "The resource does not accept this HTTP method."),
    ("NOT_ACCEPTABLE", 406, "The service cannot answer in a media type the client accepts."),
    ("CONFLICT", 409, "The request conflicts with the resource's current state."),
    ("GONE", 410, "The resource is no longer available."),
    ("LENGTH_REQUIRED", 411, "The request needs a Content-Length."),
    ("PRECONDITION_FAILED", 412, "A precondition in the request's headers does not hold."),
    ("REQUEST_URI_TOO_LONG", 414, "The request URL is longer than the service reads."),
    ("REQUESTED_RANGE_NOT_SATISFIABLE", 416, "The requested byte range is not available."),
    ("EXPECTATION_FAILED", 417, "The Expect header cannot be met."),
    ("IM_A_TEAPOT", 418, "The server refuses to brew coffee (RFC 2324)."),
    ("MISDIRECTED_REQUEST", 421, "The request reached a server that cannot answer for it."),
    ("LOCKED", 423, "The resource is locked."),
    ("FAILED_DEPENDENCY", 424, "The request depended on another request that failed."),
    ("PRECONDITION_REQUIRED", 428, "The request must be conditional."),
    ("TOO_MANY_REQUESTS", 429, "Too many requests; retry after Retry-After seconds."),
    ("REQUEST_HEADER_FIELDS_TOO_LARGE", 431, "The request's headers are too large."),
    ("UNAVAILABLE_FOR_LEGAL_REASONS", 451, "The resource is withheld for legal reasons."),
    ("INTERNAL_SERVER_ERROR", 500, "The framework failed to answer; the cause is logged."),
    ("NOT_IMPLEMENTED", 501, "The service does not implement this request."),
    ("BAD_GATEWAY", 502, "An upstream server gave an invalid answer."),
    ("SERVICE_UNAVAILABLE", 503, "The service cannot answer now; retry after Retry-After."),
    ("GATEWAY_TIMEOUT", 504, "An upstream server did not answer in time."),
    ("HTTP_VERSION_NOT_SUPPORTED", 505, "The HTTP version of the request is not supported."),
    # -- the service itself ------------------------------------------------------------
    ("INTERNAL_ERROR", 500, "An unexpected error; it is logged and no detail is sent."),
    ("NOT_READY", 503, "The readiness probe failed: the database or the HSM does not answer."),
    ("CONFIGURATION_INVALID", 503, "The service's configuration is invalid (command line)."),
    ("DATABASE_UNAVAILABLE", 503, "The database does not answer; retry after Retry-After."),
    ("STORAGE_FULL", 503, "The database's storage is full; retry after Retry-After."),
    ("RATE_LIMITED", 429, "Too many attempts from this client; retry after Retry-After."),
    # -- HSM (hsm) ---------------------------------------------------------------------
    ("HSM_ERROR", 503, "The hardware security module failed."),
    ("HSM_UNAVAILABLE", 503, "The HSM's PKCS#11 module or token cannot be reached."),
    ("HSM_TOKEN_MISSING", 503, "Set-up found no HSM token where an earlier one left traces."),
    ("HSM_PIN_INCORRECT", 503, "The HSM token refused the user PIN (an operator must unlock)."),
    ("HSM_KEY_NOT_FOUND", 404, "No private key on the HSM token matches the key reference."),
    ("HSM_UNSUPPORTED_SCHEME", 422, "The signature scheme does not fit the key's algorithm."),
    # -- certificates and proofs (identity) ----------------------------------------------
    ("CERTIFICATE_MALFORMED", 422, "The bytes are not one X.509 certificate in PEM or DER."),
    (
        "CERTIFICATE_PROFILE_INVALID",
        422,
        "The certificate does not follow the profile it claims (JPKI or registration).",
    ),
    ("CERTIFICATE_ISSUER_UNKNOWN", 403, "No path from the certificate to a trusted CA."),
    ("CERTIFICATE_EXPIRED", 403, "The certificate's validity has ended."),
    ("CERTIFICATE_NOT_YET_VALID", 403, "The certificate's validity has not begun."),
    ("CERTIFICATE_REVOKED", 403, "The certificate is revoked (by OCSP or CRL)."),
    (
        "CERTIFICATE_POLICY_MISMATCH",
        403,
        "The certificate's policy is not the one this use needs (also test cards).",
    ),
    ("CERTIFICATE_KEY_USAGE_MISMATCH", 403, "The certificate's key usage does not allow this use."),
    ("CERTIFICATE_INVALID", 403, "The certificate does not validate for another reason."),
    (
        "REVOCATION_STATUS_UNAVAILABLE",
        503,
        "No OCSP or CRL answer could vouch for the certificate now; retry later.",
    ),
    ("SIGNATURE_INVALID", 403, "The signature does not verify with the certificate's key."),
    ("CORPORATE_NUMBER_INVALID", 422, "A 法人番号 that is not 13 digits with a right check digit."),
    ("TRUST_STORE_INVALID", 503, "The configured trust store cannot be read."),
    # -- sign-in, enrolment and roles (app.people) ---------------------------------------
    ("CHALLENGE_NOT_FOUND", 404, "No challenge with this nonce was issued."),
    ("CHALLENGE_EXPIRED", 410, "The challenge's lifetime has passed; ask for a new one."),
    ("CHALLENGE_REPLAYED", 409, "The challenge was used already."),
    ("CHALLENGE_PURPOSE_MISMATCH", 409, "The challenge was issued for another purpose."),
    ("CHALLENGES_EXHAUSTED", 503, "Too many open challenges; retry after Retry-After."),
    ("UNAUTHENTICATED", 401, "The endpoint needs a bearer token or client credentials."),
    ("TOKEN_INVALID", 401, "The access token is unknown, ended or not the enrolled one's."),
    ("TOKEN_EXPIRED", 401, "The access token has expired; log in again."),
    (
        "TOKEN_CERTIFICATE_REVOKED",
        401,
        "The certificate that earned the access token has been revoked since the login.",
    ),
    ("CLIENT_CREDENTIALS_INVALID", 401, "The API client's id or secret does not hold."),
    ("CLIENT_NOT_FOUND", 404, "No API client with this id."),
    (
        "CLIENT_CORPORATIONS_REQUIRED",
        400,
        "An API client is registered for named corporations or for all, exactly one of them.",
    ),
    ("CERTIFICATE_NOT_ENROLLED", 403, "The certificate is not enrolled for a person."),
    ("CERTIFICATE_ALREADY_ENROLLED", 409, "The certificate is enrolled already."),
    ("NOT_A_REPRESENTATIVE", 403, "The registration certificate names no representative title."),
    (
        "REENROLL_REQUIRED",
        403,
        "The signing certificate was revoked for affiliationChanged: enrol the new card.",
    ),
    ("ENROLMENT_NAME_MISMATCH", 403, "The card's name is not the name the invitation gives."),
    ("REBIND_IDENTITY_MISMATCH", 403, "The new card is not proven to be the same person."),
    ("REBIND_NOT_PERMITTED", 403, "Holders of a global role are never re-bound by invitation."),
    ("INVITATION_INVALID", 404, "No open invitation with this code."),
    ("INVITATION_EXPIRED", 410, "The invitation's lifetime has passed."),
    ("CORPORATION_NOT_FOUND", 404, "dairi does not know this corporation."),
    ("PERSON_NOT_FOUND", 404, "No person with this id."),
    ("PERSON_NOT_EMPLOYEE", 422, "The person is not an employee of the corporation."),
    ("ROLE_ALREADY_ASSIGNED", 409, "The person holds that role already."),
    ("ROLE_ASSIGNMENT_NOT_FOUND", 404, "No such role assignment."),
    # -- credentials and signatures (app.credentials, signing) ---------------------------
    ("CREDENTIAL_INVALID", 422, "The credential cannot be used as given."),
    ("CREDENTIAL_NAME_INVALID", 422, "A credential name has 1 to 200 characters."),
    ("CREDENTIAL_NAME_TAKEN", 409, "A credential with this name exists."),
    ("CREDENTIAL_NOT_ACTIVE", 409, "The credential is pending, revoked or its key destroyed."),
    ("CREDENTIAL_UNKNOWN", 404, "No credential with this name or id."),
    ("CREDENTIAL_ALREADY_REVOKED", 409, "The credential is revoked already."),
    ("CARD_OF_ANOTHER_PERSON", 403, "The card's certificate is not that of the person logged in."),
    ("CERTIFICATE_KEY_MISMATCH", 422, "The certificate does not certify the credential's HSM key."),
    (
        "CERTIFICATE_KEY_USAGE_INVALID",
        422,
        "The certificate's key usage does not allow signing documents.",
    ),
    ("DOCUMENT_INVALID", 422, "The document cannot be signed as given."),
    ("DOCUMENT_NOT_PDF", 422, "The document is not a PDF."),
    ("DOCUMENT_MALFORMED", 422, "The PDF is truncated or otherwise unreadable."),
    ("DOCUMENT_ENCRYPTED", 422, "The PDF is encrypted."),
    (
        "DOCUMENT_CERTIFIED_NO_CHANGES",
        422,
        "The PDF carries a certification signature that forbids any change, a signature too.",
    ),
    ("DOCUMENT_TOO_LARGE", 422, "The document is larger than the service signs."),
    # -- verification of signed documents (signing.verification; reason codes) ----------
    ("DOCUMENT_NOT_SIGNED", 422, "The PDF to verify carries no signature."),
    (
        "DOCUMENT_MODIFIED_AFTER_SIGNING",
        422,
        "A change after signing alters what a reader sees (verification reason code).",
    ),
    ("MANDATE_MISSING", 422, "A purpose was asked but the signature carries no mandate."),
    (
        "MANDATE_STATUS_UNKNOWN",
        422,
        "No CRL or OCSP answer from the attribute authority proves the mandate's status.",
    ),
    ("EVIDENCE_MISSING", 422, "The document lacks the root grant's embedded evidence files."),
    (
        "SIGNATURE_WRAPPING",
        422,
        "An XML signature's references do not resolve to what a reader sees (reason code).",
    ),
    (
        "EVIDENCE_MISMATCH",
        422,
        "An embedded evidence file is not the one the mandate AC certifies.",
    ),
    (
        "REPRESENTATIVE_CERT_UNTRUSTED",
        422,
        "The representative's registration certificate does not chain to a trusted anchor.",
    ),
    (
        "VERIFICATION_PURPOSE_INVALID",
        422,
        "The purpose to verify against is not a JSON object of the documented fields.",
    ),
    ("DOCUMENT_NOT_XML", 422, "The document is not well-formed XML."),
    ("XML_UNSAFE", 422, "The XML declares a DTD or entities; it is refused before parsing."),
    (
        "XML_ALREADY_SIGNED",
        422,
        "The XML carries a signature an enveloped one would break; sign it detached.",
    ),
    ("SIGNER_CERTIFICATE_INVALID", 422, "The signer's certificate does not validate now."),
    ("SIGNER_CERTIFICATE_REVOKED", 422, "The signer's certificate is revoked."),
    ("SIGNING_FAILED", 503, "Signing failed in the service; retry after Retry-After."),
    ("TIMESTAMP_FAILED", 503, "The time-stamping authority gave no usable token; retry later."),
    (
        "VALIDATION_DATA_UNAVAILABLE",
        503,
        "Revocation data for the signature could not be fetched; retry later.",
    ),
    # -- development PKI and cards (devpki, dairi dev) ------------------------------------
    ("DEV_PKI_UNAVAILABLE", 503, "The development PKI is not set up (`dairi dev pki`)."),
    ("DEV_PKI_ERROR", 503, "The development PKI failed."),
    ("DEV_CARD_INVALID", 422, "The card directory is missing, malformed or lacks a certificate."),
    ("DEV_CARD_EXISTS", 409, "The directory holds a card already."),
    ("DEV_CARD_ROLE_UNKNOWN", 422, "The card has no key for this role."),
    # -- grant instructions and mandates (delegation, app.mandates) -----------------------
    ("INSTRUCTION_MALFORMED", 422, "The grant instruction is not a valid canonical document."),
    (
        "INSTRUCTION_SIGNATURE_INVALID",
        422,
        "The CMS signature over the grant instruction does not verify.",
    ),
    ("INSTRUCTION_REPLAYED", 409, "This grant instruction was accepted before."),
    ("INSTRUCTION_STALE", 422, "The instruction's created_at is too old or too far ahead."),
    ("SCOPE_INVALID", 422, "A scope field is invalid (action, entity, case, amount, validity)."),
    ("SCOPE_ACTION_UNKNOWN", 422, "The action is not one dairi knows."),
    ("AC_MALFORMED", 422, "The attribute certificate cannot be read."),
    ("MANDATE_TERMS_INVALID", 422, "The mandate attribute in the certificate is invalid."),
    ("PROVENANCE_INCONSISTENT", 422, "The AC's depth and embedded ancestors disagree."),
    ("HOLDER_CERTIFICATE_MALFORMED", 422, "The holder certificate named by the AC is malformed."),
    ("REVOCATION_REASON_INVALID", 422, "The revocation reason is not one dairi accepts."),
    ("GRANTEE_NOT_EMPLOYEE", 422, "The grantee is not an employee of the principal."),
    (
        "HOLDER_NOT_GRANTEE",
        403,
        "The holder certificate is not an active credential of the grantee for the principal.",
    ),
    ("MANDATE_EXPIRED", 422, "The mandate's validity has ended."),
    ("MANDATE_NOT_YET_VALID", 403, "The mandate's validity has not begun (chain verdict)."),
    ("MANDATE_REVOKED", 403, "The mandate is revoked (chain verdict)."),
    (
        "PRINCIPAL_MISMATCH",
        403,
        "A hop's principal is not its chain's (e.g. a parent mandate of another corporation).",
    ),
    ("PRINCIPAL_NAME_MISMATCH", 403, "The principal's name is not the registered 商号."),
    (
        "REPRESENTATIVE_CORPORATION_MISMATCH",
        403,
        "The registration certificate is for another corporation than the principal.",
    ),
    (
        "GRANTOR_NOT_REPRESENTATIVE",
        403,
        "The grantor is not a representative of the principal now.",
    ),
    ("GRANTOR_NOT_SIGNER", 403, "The grantor named in the instruction did not sign it."),
    (
        "SUBMITTER_NOT_REPRESENTATIVE",
        403,
        "Only a representative of the principal (or an administrator) may submit its grant.",
    ),
    (
        "REPRESENTATIVE_CERT_REVOKED",
        403,
        "The representative's registration certificate is revoked.",
    ),
    (
        "JOINT_REPRESENTATION_INCOMPLETE",
        403,
        "共同代表: fewer distinct representatives signed than the corporation needs.",
    ),
    (
        "GRANTOR_NOT_PARENT_GRANTEE",
        403,
        "A sub-delegation must be signed by the parent mandate's grantee.",
    ),
    ("SUBDELEGATION_MULTIPLE_SIGNERS", 403, "A sub-delegation is signed by exactly one signer."),
    (
        "SUBDELEGATION_NOT_ALLOWED",
        403,
        "The parent mandate allows no sub-delegation (max_depth 0).",
    ),
    ("DEPTH_EXCEEDED", 403, "The sub-delegation is deeper than the parent allows."),
    ("SCOPE_ACTION_NOT_GRANTED", 403, "The action is outside the mandate's scope."),
    ("SCOPE_ENTITY_NOT_GRANTED", 403, "The procuring entity is outside the mandate's scope."),
    ("SCOPE_CASE_NOT_GRANTED", 403, "The case is outside the mandate's scope."),
    ("SCOPE_AMOUNT_EXCEEDED", 403, "The amount exceeds the mandate's limit."),
    ("SCOPE_VALIDITY_EXCEEDED", 403, "The validity lies outside the parent mandate's."),
    ("ANCESTOR_REVOKED", 403, "A mandate up the chain is revoked."),
    ("PARENT_EXPIRED", 403, "The parent mandate's validity has ended."),
    ("PARENT_NOT_YET_VALID", 403, "The parent mandate's validity has not begun."),
    ("PARENT_INVALID", 403, "A mandate up the chain does not hold (grant or chain verdict)."),
    ("HOLDER_MISMATCH", 403, "The signer's certificate is not the mandate's holder."),
    ("AC_INVALID", 403, "A hop's attribute certificate does not hold (chain verdict)."),
    ("AC_NOT_ISSUED_BY_AA", 403, "The AC's signature is not the attribute authority's."),
    (
        "CHAIN_LOOP",
        403,
        "The mandate chain refers back to itself, e.g. a grant to an ancestor's holder.",
    ),
    ("CHAIN_EMPTY", 403, "There is no mandate to judge (chain verdict)."),
    ("MANDATE_NOT_FOUND", 404, "No mandate with this id."),
    ("PARENT_NOT_FOUND", 404, "The parent mandate the instruction names does not exist."),
    ("MANDATE_ALREADY_REVOKED", 409, "The mandate is revoked already."),
    (
        "PDF_FONT_NOT_FOUND",
        503,
        "No font that draws Japanese is configured or installed for the PDFs dairi draws.",
    ),
    ("AA_NOT_CONFIGURED", 503, "The attribute authority's key or certificate is not configured."),
    (
        "AA_KEY_MISMATCH",
        503,
        "The attribute authority's HSM key does not match its certificate (or is not RSA).",
    ),
    # -- signing sessions (app.signing_sessions; DESIGN §6 signature activation) ----------
    ("SESSION_NOT_FOUND", 404, "No signing session with this id (of the caller)."),
    ("SESSION_EXPIRED", 410, "The signing session's card challenge expired; open a new one."),
    ("SESSION_ALREADY_AUTHORIZED", 409, "The signing session was authorised already."),
    ("DOCUMENTS_MISSING", 422, "A signing session needs at least one document."),
    ("DOCUMENTS_TOO_MANY", 422, "More documents than a signing session takes."),
    ("DOCUMENT_ALREADY_FETCHED", 410, "The signed document was fetched already (once only)."),
    ("DOCUMENT_NOT_FOUND", 404, "The signing session has no signed document at this index."),
    ("CREDENTIAL_NOT_OWNED", 403, "The credential is not the caller's own."),
    ("CARD_NOT_CALLERS", 403, "The card proving the activation is not the signed-in person's."),
    ("NO_COVERING_MANDATE", 403, "No mandate held by the credential covers the purpose."),
    ("MANDATE_AMBIGUOUS", 409, "Several mandates cover the purpose: name one (`mandates`)."),
    ("SAD_MISSING", 403, "No signature activation datum (SAD) was sent."),
    ("SAD_INVALID", 403, "The SAD is not the one this session's authorisation issued."),
    ("SAD_EXPIRED", 410, "The SAD's lifetime has passed; authorise a new session."),
    ("SAD_USED", 409, "The SAD was used already (single use)."),
    ("SESSION_FORMAT_INVALID", 422, "The format does not go with the purpose or documents."),
    # -- the Cloud Signature Consortium API (app.csc; DESIGN §6) -----------------------------
    (
        "CSC_HASHES_INVALID",
        422,
        "The hashes are not 1 to multisign SHA-256 values matching numSignatures.",
    ),
    (
        "CSC_HASH_ALGORITHM_UNSUPPORTED",
        422,
        "Only SHA-256 hashes (2.16.840.1.101.3.4.2.1) are signed.",
    ),
    ("CSC_SIGN_ALGORITHM_UNSUPPORTED", 422, "The signAlgo does not fit the credential's key."),
    (
        "CSC_AUTH_DATA_INVALID",
        422,
        "authData needs dairi_card_certificate and dairi_card_signature, base64.",
    ),
    (
        "CSC_ACTIVATION_NOT_FOUND",
        409,
        "No dairi_to_sign was issued for this request: authorize without authData first.",
    ),
    ("CSC_HASH_NOT_AUTHORIZED", 403, "A hash is not one the SAD was issued for."),
    ("CSC_SIGNATURE_COUNT_EXCEEDED", 403, "More hashes than the SAD authorised (numSignatures)."),
    # -- audit log (audit) -----------------------------------------------------------------
    ("AUDIT_CHAIN_BROKEN", 500, "The audit chain does not verify: an event was altered or lost."),
    ("AUDIT_CHECKPOINT_INVALID", 422, "The audit checkpoint is malformed or does not verify."),
    (
        "AUDIT_SIGNATURE_INVALID",
        422,
        "An audit signature, time-stamp or its certificate path does not hold.",
    ),
    ("AUDIT_EXPORT_FAILED", 500, "The audit export could not be written or read."),
    (
        "AUDIT_KEY_NOT_CONFIGURED",
        503,
        "No audit checkpoint key is configured (production) or can be made (development).",
    ),
    ("INPUT_INVALID", 422, "The command's options do not go together (command line)."),
    # -- the API client (app.client, `dairi client`) --------------------------------------
    ("CLIENT_CONNECTION_FAILED", 503, "The client could not reach the service at its URL."),
    ("CLIENT_RESPONSE_INVALID", 502, "The service's answer is not what the API documents."),
    ("CLIENT_NOT_LOGGED_IN", 401, "The client holds no access token for this service."),
    ("CLIENT_STATE_INVALID", 422, "The client's state file cannot be read."),
    ("CLIENT_CARD_UNUSABLE", 422, "The card (directory, PKCS#12 file or token) cannot sign."),
    (
        "CLIENT_DIGEST_MISMATCH",
        502,
        "The service reports documents other than those the client sent: nothing authorized.",
    ),
    (
        "CLIENT_ACTIVATION_MISMATCH",
        502,
        "What the card would sign names another session, purpose or credential: not signed.",
    ),
    ("CLIENT_OUTPUT_EXISTS", 409, "The signed file exists already (--force to overwrite)."),
    ("CURSOR_INVALID", 422, "The paging cursor is not one this service returned."),
    (
        "REPORT_TOO_LARGE",
        422,
        "The report would cover too many purposes: name an action (and entity, case).",
    ),
    # -- the web console (app.console) ---------------------------------------------------
    ("CONSOLE_CODE_INVALID", 422, "A console sign-in code is 8 letters, as the console shows."),
    (
        "CONSOLE_SIGN_IN_NOT_FOUND",
        404,
        "No console sign-in waits for this code (mistyped, expired or used already).",
    ),
    (
        "CONSOLE_CHALLENGE_MISMATCH",
        409,
        "The challenge answered was not opened for this console sign-in code.",
    ),
    ("CSRF_TOKEN_INVALID", 403, "The form's CSRF token is missing or not this session's."),
    # -- the error base's own code (dairi.errors) -----------------------------------------
    ("DAIRI_ERROR", 500, "A coded failure raised without a more specific code."),
)


def problem(code: str) -> Problem:
    """The catalogue entry for ``code``; :class:`UnknownProblemCode` if there is none."""
    try:
        return CATALOGUE[code]
    except KeyError:
        raise UnknownProblemCode(f"{code!r} is not in dairi.problems.CATALOGUE") from None
