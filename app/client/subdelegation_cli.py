"""``dairi client sub-delegate`` (registered by :mod:`app.client.cli`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from app.client.api import ClientError
from app.client.card_options import card_options, take_card
from app.client.cli import Options, client_command, client_group
from app.client.scope_options import scope_options, take_terms
from app.client.subdelegation import sub_delegate
from identity.certificate_files import load_certificate


@client_group.command("sub-delegate")
@click.option("--parent", "parent_id", required=True, help="the mandate you hold and pass on")
@click.option("--credential", "credential_id", required=True, help="your credential (its holder)")
@click.option("--grantee-person", required=True, help="the sub-agent's person id")
@click.option(
    "--grantee-certificate",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="the sub-agent's signing certificate (PEM or DER)",
)
@click.option("--grantee-name", default=None, help="default: the certificate's common name")
@scope_options(within_parent=True)
@card_options
@client_command
def sub_delegate_command(
    options: Options,
    parent_id: str,
    credential_id: str,
    grantee_person: str,
    grantee_certificate: Path,
    grantee_name: str | None,
    **kwargs: Any,
) -> None:
    """Sub-delegate (復代理) part of a mandate you hold: the service signs the instruction
    with your credential once your card authorizes it, then grants it."""
    card = take_card(kwargs, "authentication")
    terms = take_terms(kwargs)
    try:
        holder = load_certificate(grantee_certificate.read_bytes())
    except OSError as exc:
        raise ClientError(f"cannot read {grantee_certificate}", "INPUT_INVALID") from exc
    mandate: dict[str, Any] = {}
    with options.client() as client:
        for event, value in sub_delegate(
            client,
            card,
            credential_id,
            parent_id,
            holder,
            grantee_person,
            terms,
            grantee_name=grantee_name,
        ):
            if event == "session":
                options.say(f"session {value['id']} opened to sign the sub-delegation")
            elif event == "authorized":
                options.say(f"authorized with the card until {value.get('expires_at')}")
            elif event == "granted":
                mandate = value
    scope = mandate.get("scope", {})
    options.say(
        f"mandate {mandate['id']} granted under {parent_id} to "
        f"{mandate.get('grantee', {}).get('name')} (person {grantee_person}): "
        f"{', '.join(scope.get('actions', []))} until {scope.get('not_after')}"
    )
    options.result({"mandate": mandate})
