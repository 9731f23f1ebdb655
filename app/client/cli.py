"""``dairi client …``: the API's command-line client (registered in :mod:`app.cli.main`).

Points at a service by ``--url`` or ``DAIRI_URL`` (else the URL of the last login),
keeps the access token in a per-user state file (``--state``, mode 0600), and signs
with a card: a virtual card directory (``--card``), a PKCS#12 file (``--p12``) or a
key on a PKCS#11 token (``--pkcs11-module`` …). Progress is one line per step on
stdout; an error is one line ``error CODE: detail`` on stderr and exit status 2;
``--json`` prints one JSON object per command instead of the progress lines.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import click

from app.client.api import ApiClient, ClientError, refusal, sign_grant, unb64
from app.client.card_options import card_options, take_card
from app.client.console import approve_sign_in
from app.client.grants import build_instruction
from app.client.scope_options import scope_options, take_terms
from app.client.signing import SigningRequest, sign_files
from app.client.state import ClientState, load_state, save_state, state_path
from dairi import DairiError
from identity.certificate_files import load_certificate

LEVELS = ["B-B", "B-T", "B-LT", "B-LTA"]


@dataclass
class Options:
    url: str | None
    state: Path
    as_json: bool

    def base_url(self) -> str:
        url = self.url or load_state(self.state).url
        if not url:
            raise ClientError("name the service with --url or DAIRI_URL", "INPUT_INVALID")
        return url.rstrip("/")

    def client(self, *, logged_in: bool = True) -> ApiClient:
        """A client for the service, with the stored token when ``logged_in``."""
        url = self.base_url()
        token = load_state(self.state).token_for(url)
        if logged_in and not token:
            raise ClientError(
                f"not logged in to {url} (dairi client login)", "CLIENT_NOT_LOGGED_IN"
            )
        return ApiClient(url, token)

    def say(self, line: str) -> None:
        if not self.as_json:
            click.echo(line)

    def result(self, value: dict[str, Any]) -> None:
        if self.as_json:
            click.echo(json.dumps(value, ensure_ascii=False, default=str))


def client_command(command: Callable[..., Any]) -> Callable[..., Any]:
    """Errors with a stable code as one line ``error CODE: detail`` (and, with ``--json``,
    ``{"error": CODE, "detail": …}`` on stdout), exit status 2."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        options: Options = click.get_current_context().find_object(Options)  # type: ignore[assignment]
        try:
            return command(options, *args, **kwargs)
        except DairiError as exc:
            if options is not None and options.as_json:
                click.echo(
                    json.dumps({"error": exc.code, "detail": exc.message}, ensure_ascii=False)
                )
            click.echo(f"error {exc.code}: {exc.message}", err=True)
            sys.exit(2)

    return wrapper


# -- the group --------------------------------------------------------------------------


@click.group("client")
@click.option(
    "--url", envvar="DAIRI_URL", help="the service (default: $DAIRI_URL, else the last login's)"
)
@click.option(
    "--state",
    "state_file",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="DAIRI_CLIENT_STATE",
    help="the state file with the access token (default ~/.config/dairi/client.json)",
)
@click.option("--json", "as_json", is_flag=True, help="print one JSON object per command")
@click.pass_context
def client_group(
    ctx: click.Context, url: str | None, state_file: Path | None, as_json: bool
) -> None:
    """The API's client: log in with a card, obtain credentials, grant and revoke
    mandates, sign PDFs through signing sessions."""
    ctx.obj = Options(url, state_path(state_file), as_json)


@client_group.command("login")
@card_options
@click.option("--show-token", is_flag=True, help="print the access token (it is a secret)")
@client_command
def login(options: Options, show_token: bool, **kwargs: Any) -> None:
    """Log in with a card (a My Number Card's authentication key, or a representative's
    registration certificate) and keep the access token in the state file."""
    card = take_card(kwargs, "authentication")
    with options.client(logged_in=False) as client:
        answer = client.login(card)
    caller = answer.get("caller", {})
    save_state(
        options.state,
        ClientState(
            client.url, answer["access_token"], str(answer.get("expires_at")), caller.get("id")
        ),
    )
    roles = ", ".join(caller.get("roles", [])) or "no roles"
    corporations = ", ".join(
        sorted({*caller.get("employee_of", []), *caller.get("representative_of", [])})
    )
    options.say(
        f"logged in to {client.url} as {caller.get('kind')} {caller.get('id')} ({roles}"
        f"{' of ' + corporations if corporations else ''}); token expires "
        f"{answer.get('expires_at')}, kept in {options.state}"
    )
    if show_token and not options.as_json:
        click.echo(answer["access_token"])
    options.result(
        {
            "url": client.url,
            "caller": caller,
            "expires_at": answer.get("expires_at"),
            "state": str(options.state),
            **({"access_token": answer["access_token"]} if show_token else {}),
        }
    )


@client_group.command("approve")
@click.argument("code")
@card_options
@client_command
def approve(options: Options, code: str, **kwargs: Any) -> None:
    """Sign a browser in to the web console: approve the CODE it shows (ABCD-EFGH)
    with your card, as a login does. Check that the code is the one in front of you."""
    card = take_card(kwargs, "authentication")
    with options.client(logged_in=False) as client:
        answer = approve_sign_in(client, card, code)
    caller = answer.get("caller", {})
    sign_in = answer["sign_in"]
    options.say(
        f"approved console sign-in {sign_in['code']} (asked {sign_in['requested_at']}) at "
        f"{client.url} for {caller.get('kind')} {caller.get('id')}; the browser's session "
        f"ends {answer.get('session_expires_at')}"
    )
    options.result({"url": client.url, **answer})


@client_group.command("logout")
@client_command
def logout(options: Options) -> None:
    """End the stored token at the service and forget it."""
    with options.client() as client:
        response = client.send("POST", "/api/v1/auth/logout")
    if response.status_code not in (204, 401):
        raise refusal(response, "POST", "/api/v1/auth/logout")
    save_state(options.state, ClientState(url=client.url))
    options.say(f"logged out of {client.url}")
    options.result({"url": client.url, "logged_out": True})


@client_group.command("whoami")
@client_command
def whoami(options: Options) -> None:
    """Who the stored token belongs to, as the service sees it."""
    with options.client() as client:
        caller = client.me()
    options.say(
        f"{caller.get('kind')} {caller.get('id')} {caller.get('name')}: "
        f"{', '.join(caller.get('roles', []))}"
    )
    options.result({"caller": caller})


# -- credentials ------------------------------------------------------------------------


@client_group.group("credential")
def credential_group() -> None:
    """Signing credentials: a key in the service's HSM, certified for you."""


def _credential_line(c: dict[str, Any]) -> str:
    return f"{c['id']}  {c['status']}  {c.get('algorithm')}  {c.get('name')}  {c.get('subject')}"


@credential_group.command("issue")
@click.option("--corporation", "corporate_number", required=True, help="the employer's 法人番号")
@click.option("--name", default=None, help="a label for the credential (unique)")
@click.option("--algorithm", default=None, help="rsa-2048, … (default: the service's)")
@card_options
@client_command
def credential_issue(
    options: Options, corporate_number: str, name: str | None, algorithm: str | None, **kwargs: Any
) -> None:
    """Obtain a signing credential with a fresh proof by the card's JPKI signing key."""
    card = take_card(kwargs, "signing")
    with options.client() as client:
        issued = client.issue_credential(card, corporate_number, name, algorithm)
    options.say(f"credential issued: {_credential_line(issued)}")
    options.result({"credential": issued})


@credential_group.command("renew")
@click.argument("credential_id")
@click.option("--name", default=None, help="a label for the new credential (unique)")
@click.option("--algorithm", default=None, help="default: the old credential's")
@card_options
@client_command
def credential_renew(
    options: Options, credential_id: str, name: str | None, algorithm: str | None, **kwargs: Any
) -> None:
    """Renew a credential: a new key and certificate; the mandates it holds are re-issued
    to the new certificate and the old credential is revoked (superseded)."""
    card = take_card(kwargs, "signing")
    with options.client() as client:
        renewed = client.renew_credential(credential_id, card, name, algorithm)
    options.say(f"credential {credential_id} renewed: {_credential_line(renewed)}")
    for moved in renewed.get("reissued_mandates", []):
        options.say(f"mandate {moved['from']} re-issued as {moved['to']}")
    options.result({"credential": renewed})


@credential_group.command("list")
@click.option(
    "--corporation",
    "corporate_number",
    default=None,
    help="a representative: the corporation's employees' credentials",
)
@client_command
def credential_list(options: Options, corporate_number: str | None) -> None:
    """Your credentials (or, for a representative, the corporation's)."""
    with options.client() as client:
        found = client.credentials(corporate_number)
    for credential in found:
        options.say(_credential_line(credential))
    options.result({"credentials": found})


# -- mandates ---------------------------------------------------------------------------


@client_group.command("grant")
@click.option("--grantee-person", "grantee_person", default=None, help="the employee's person id")
@click.option(
    "--grantee-certificate",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="the employee's signing certificate (PEM or DER): the mandate's holder",
)
@click.option("--grantee-credential", default=None, help="the employee's credential id (instead)")
@click.option("--grantee-name", default=None, help="default: the certificate's common name")
@scope_options(within_parent=False)
@card_options
@client_command
def grant(
    options: Options,
    grantee_person: str | None,
    grantee_certificate: Path | None,
    grantee_credential: str | None,
    grantee_name: str | None,
    **kwargs: Any,
) -> None:
    """Grant a mandate (電子委任状): build the instruction from the flags, sign it with the
    representative's registration certificate, and post it."""
    card = take_card(kwargs, "signing")
    if (grantee_certificate is None) == (grantee_credential is None):
        raise ClientError(
            "name the grantee by --grantee-certificate or --grantee-credential", "INPUT_INVALID"
        )
    terms = take_terms(kwargs)
    with options.client() as client:
        if grantee_credential is not None:
            held = client.credential(grantee_credential)
            if not held.get("certificate"):
                raise ClientError(
                    f"credential {grantee_credential} has no certificate", "INPUT_INVALID"
                )
            holder = unb64(held["certificate"], "a certificate")
            grantee_person = grantee_person or held.get("person_id")
        else:
            assert grantee_certificate is not None
            try:
                holder = load_certificate(grantee_certificate.read_bytes())
            except OSError as exc:
                raise ClientError(f"cannot read {grantee_certificate}", "INPUT_INVALID") from exc
        if not grantee_person:
            raise ClientError("name the grantee by --grantee-person", "INPUT_INVALID")
        instruction = build_instruction(
            card.certificate_der, holder, terms, grantee_name=grantee_name
        )
        canonical = instruction.canonical()
        mandate = client.grant(canonical, sign_grant(card, canonical), holder, grantee_person)
    scope = mandate.get("scope", {})
    options.say(
        f"mandate {mandate['id']} granted to {mandate.get('grantee', {}).get('name')} "
        f"(person {grantee_person}): {', '.join(scope.get('actions', []))} until "
        f"{scope.get('not_after')}"
    )
    options.result({"mandate": mandate})


@client_group.command("revoke")
@click.argument("mandate_id")
@click.option("--reason", default=None, help="default: privilege_withdrawn")
@client_command
def revoke(options: Options, mandate_id: str, reason: str | None) -> None:
    """Revoke a mandate; its sub-delegations fall with it."""
    with options.client() as client:
        answer = client.revoke_mandate(mandate_id, reason)
    revoked = answer.get("revoked", [])
    options.say(
        f"mandate {mandate_id} revoked at {answer.get('revoked_at')}"
        f" ({len(revoked)} mandate{'s' if len(revoked) != 1 else ''} in all)"
    )
    options.result(answer)


# -- signing ----------------------------------------------------------------------------


@client_group.command("sign")
@click.argument(
    "files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option("--credential", "credential_id", required=True, help="your credential's id")
@click.option("--principal", required=True, help="the 法人番号 you sign for")
@click.option("--action", required=True, help="bid, quote, contract, invoice, e-application:…")
@click.option("--entity", default=None, help="the procuring entity")
@click.option("--case", default=None, help="the case")
@click.option("--amount", type=click.IntRange(min=0), default=None, help="yen")
@click.option("--level", type=click.Choice(LEVELS), default="B-T", show_default=True)
@click.option("--mandate", "mandate_id", default=None, help="default: the one covering the purpose")
@click.option("--stamp", is_flag=True, help="draw a visible stamp (受任者, 委任者, 委任事項 …)")
@click.option(
    "--format",
    "format_",
    type=click.Choice(["pades", "xades"]),
    default="pades",
    show_default=True,
    help="pades: PDFs; xades: XML documents (e-applications)",
)
@click.option(
    "--packaging",
    type=click.Choice(["enveloped", "detached"]),
    default=None,
    help="xades: enveloped (default, NAME-signed.xml) or detached (NAME.xades.xml)",
)
@click.option("--force", is_flag=True, help="overwrite the signed files")
@card_options
@client_command
def sign(
    options: Options,
    files: tuple[Path, ...],
    credential_id: str,
    principal: str,
    action: str,
    entity: str | None,
    case: str | None,
    amount: int | None,
    level: str,
    mandate_id: str | None,
    stamp: bool,
    format_: str,
    packaging: str | None,
    force: bool,
    **kwargs: Any,
) -> None:
    """Sign PDFs (or, with --format xades, XML documents) under your mandate: a signing
    session with the files, your card's authentication over what is signed, then each
    signed file written beside its input as NAME-signed.pdf, NAME-signed.xml, or for a
    detached XAdES signature NAME.xades.xml."""
    if format_ == "xades" and stamp:
        raise ClientError("--stamp draws on PDFs, not with --format xades", "INPUT_INVALID")
    if format_ != "xades" and packaging:
        raise ClientError("--packaging goes with --format xades", "INPUT_INVALID")
    card = take_card(kwargs, "authentication")
    request = SigningRequest(
        credential_id,
        principal,
        action,
        entity,
        case,
        amount,
        level,
        mandate_id,
        format=format_,
        stamp=stamp,
        packaging=packaging,
    )
    done: list[dict[str, Any]] = []
    session: dict[str, Any] = {}
    with options.client() as client:
        for event, value in sign_files(client, card, request, list(files), force=force):
            if event == "session":
                session = value
                options.say(
                    f"session {value['id']} opened under mandate {value.get('mandate_id')}: "
                    f"{len(files)} document(s), digests checked"
                )
            elif event == "authorized":
                options.say(f"authorized with the card until {value.get('expires_at')}")
            else:
                options.say(f"{value.target}  {level}  sha256={value.signed_sha256}")
                done.append({k: str(v) for k, v in asdict(value).items()})
    options.result(
        {"session": session.get("id"), "mandate_id": session.get("mandate_id"), "signed": done}
    )


# ``dairi client sub-delegate``: defined beside the library code it drives.
from app.client import subdelegation_cli  # noqa: E402, F401
