"""Sub-delegation (復代理) through the service: the grantee of a mandate holds no key of
their own, so the service signs the sub-delegation instruction with the grantee's HSM
credential inside a signing session of purpose ``sub-delegation`` (format ``cms``),
authorized by the grantee's card over the instruction's digest; the client then posts
the instruction and that detached CMS as a grant (DESIGN §5, §6)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from app.client.api import ApiClient, ClientError
from app.client.cards import Card
from app.client.grants import GrantTerms, build_sub_instruction
from app.client.signing import SigningRequest, Upload, run_session

SUB_DELEGATION = "sub-delegation"
INSTRUCTION_NAME = "instruction.json"
CMS_LEVEL = "B-B"


def sub_delegate(
    client: ApiClient,
    card: Card,
    credential_id: str,
    parent_id: str,
    grantee_certificate: bytes,
    grantee_person_id: str,
    terms: GrantTerms,
    *,
    grantee_name: str | None = None,
) -> Iterator[tuple[str, Any]]:
    """Sub-delegate part of mandate ``parent_id`` (held by ``credential_id``, the
    caller's) to the holder of ``grantee_certificate``.

    Yields ``("session", answer)``, ``("authorized", answer)``, ``("signed", CMS
    bytes)`` and ``("granted", mandate)``."""
    parent = client.call("GET", f"/api/v1/mandates/{parent_id}")
    instruction = build_sub_instruction(
        parent, grantee_certificate, terms, grantee_name=grantee_name
    ).canonical()
    request = SigningRequest(
        credential_id,
        str(parent["principal"]["corporate_number"]),
        SUB_DELEGATION,
        level=CMS_LEVEL,
        mandate_id=parent_id,
        format="cms",
    )
    signature: bytes | None = None
    upload = Upload(INSTRUCTION_NAME, instruction, "application/json")
    for event, value in run_session(client, card, request, [upload]):
        if event == "fetched":
            signature = value[1]
            yield "signed", signature
        else:
            yield event, value
    if signature is None:
        raise ClientError("the service returned no signature over the instruction")
    yield "granted", client.grant(instruction, signature, grantee_certificate, grantee_person_id)
