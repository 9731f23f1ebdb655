"""The ``dairi`` command line."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import click
from sqlalchemy.orm import Session

from app.audit_trail.log import AuditLog
from app.cli.aa import aa_group
from app.cli.admin import admin
from app.cli.audit import audit_group
from app.cli.hsm import hsm_group
from app.cli.mandates import mandates_group
from app.cli.support import coded_errors, load_cli_settings, service_context
from app.cli.verify import verify_command
from app.client.cli import client_group
from app.credentials.models import Credential
from app.credentials.service import CredentialOwner, CredentialService, read_certificates
from app.dev.cards_cli import card, cert
from app.first_run import ensure_environment
from app.settings import configured_public_base_url
from app.unit_of_work import unit_of_work
from hsm import KeyAlgorithm
from signing import PadesLevel, PadesSpec

LEVELS = [level.value for level in PadesLevel]
ALGORITHMS = [alg.value for alg in KeyAlgorithm]


@click.group()
def main() -> None:
    """dairi (代理): remote signatures under electronic powers of attorney."""


@main.command()
@coded_errors
def init() -> None:
    """Create what the embedded defaults need: SoftHSM token, database, development PKI.

    The one command that creates a SoftHSM token, and only on a fresh data directory:
    where an earlier token left its PIN file it stops with HSM_TOKEN_MISSING.
    """
    settings = load_cli_settings()
    report = ensure_environment(settings, first_run=True)
    click.echo(f"data directory  {settings.data_dir}")
    click.echo(
        f"HSM token       {settings.hsm_token_label}{' (created)' if report.token_created else ''}"
    )
    if report.token_created:
        click.echo(
            f"HSM user PIN    {settings.hsm_pin_file} (back it up with the token"
            " directory; the SO PIN was not kept)"
        )
    if report.leftover_so_pin_file is not None:
        click.echo(
            f"note            {report.leftover_so_pin_file} holds an SO PIN an earlier"
            " version kept; dairi does not need it: store it offline or delete it"
        )
    click.echo(f"database        {settings.database_url.split('@')[-1]}")
    if settings.dev_mode:
        click.echo(
            f"development PKI {settings.pki_dir}{' (created)' if report.pki_created else ''}"
        )


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=int)
@click.option(
    "--workers",
    default=2,
    show_default=True,
    type=int,
    help="gunicorn worker processes (PKCS#11 is opened in each after fork)",
)
@coded_errors
def serve(host: str, port: int, workers: int) -> None:
    """Set up what is missing, then serve the API with gunicorn.

    Unless public_base_url is configured, the service is http://HOST:PORT of the
    address bound here: challenges name the address a client actually reached.
    """
    if not configured_public_base_url():
        # Inherited through execv by gunicorn and each worker's load_settings.
        os.environ["DAIRI_PUBLIC_BASE_URL"] = served_base_url(host, port)
    ensure_environment(load_cli_settings())
    gunicorn = shutil.which("gunicorn", path=os.path.dirname(sys.executable)) or "gunicorn"
    # No --preload: each worker imports the app and logs in to the HSM after fork.
    # app.serving.gunicorn_conf: threaded workers with bounded reads (slow clients), the
    # application one request at a time per worker, the control socket in data_dir.
    argv = [
        gunicorn,
        "--config",
        "python:app.serving.gunicorn_conf",
        "--workers",
        str(workers),
        "--bind",
        f"{host}:{port}",
        "--access-logfile",
        "-",
        "app.serving.wsgi:application",
    ]
    os.execv(gunicorn, argv)  # noqa: S606 - fixed argv, replaces this process


def served_base_url(host: str, port: int) -> str:
    """The URL of ``host:port`` as a client on this machine reaches it: a wildcard
    bind is reached on loopback, an IPv6 address is bracketed."""
    if host in {"", "0.0.0.0"}:  # noqa: S104 - names the wildcard, binds nothing
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@coded_errors
def db_upgrade() -> None:
    """Apply the Alembic migrations."""
    from app.migrate import migrate

    migrate(load_cli_settings().database_url)
    click.echo("database is at the newest revision")


@main.group()
def dev() -> None:
    """Development helpers (the embedded development PKI, virtual cards)."""


main.add_command(cert)  # dairi cert inspect
main.add_command(hsm_group)  # dairi hsm unlock
main.add_command(admin)  # dairi admin create
main.add_command(mandates_group)  # dairi mandates sweep
main.add_command(aa_group)  # dairi aa create-key
main.add_command(audit_group)  # dairi audit checkpoint|export|verify
main.add_command(client_group)  # dairi client login|grant|revoke|credential|sign
main.add_command(verify_command)  # dairi verify FILE
dev.add_command(card)  # dairi dev card create|sign


@dev.command("pki")
@coded_errors
def dev_pki() -> None:
    """Create the development PKI (CAs, TSA, attribute authority) if it is missing."""
    settings = load_cli_settings()
    report = ensure_environment(settings)
    state = "created" if report.pki_created else "already present"
    click.echo(f"development PKI {state} in {settings.pki_dir}")
    click.echo(f"trust anchors in {settings.trust_dir}")


@main.group()
def credential() -> None:
    """Employee signing credentials (keys in the HSM)."""


_PERSON = click.option(
    "--person", "person_id", required=True, help="the owner: an enrolled employee's person id"
)
_CORPORATION = click.option(
    "--corporation",
    "corporate_number",
    required=True,
    help="the 法人番号 the owner is employed by and signs for",
)


@credential.command("issue")
@click.option("--name", required=True, help="credential name (a label, unique)")
@_PERSON
@_CORPORATION
@click.option("--algorithm", type=click.Choice(ALGORITHMS), default=None)
@coded_errors
def credential_issue(
    name: str, person_id: str, corporate_number: str, algorithm: str | None
) -> None:
    """Generate a key in the HSM for an enrolled employee and certify it with the
    development employee-signing CA (the certificate names the person as enrolled)."""
    settings = load_cli_settings()
    context = service_context(settings)
    with unit_of_work(context.session_factory) as session:
        service = CredentialService(session, context.hsm, context.dev_pki)
        created = service.issue(
            name,
            KeyAlgorithm(algorithm or settings.default_key_algorithm),
            CredentialOwner(person_id, corporate_number),
        )
        _audit_credential(session, "credential:key:issued", created)
        click.echo(
            f"{created.id}  {created.name}  {created.algorithm}  {created.key_ref}"
            f"  {created.status}  {created.subject}"
        )


def _audit_credential(session: Session, tag: str, credential: Credential) -> None:
    """The operator's change to a credential, in the same unit of work."""
    AuditLog(session).append(
        tag,
        actor="operator",
        subject=credential.id,
        principal=credential.corporate_number,
        details={
            "algorithm": credential.algorithm,
            "key_id": credential.key_id,
            "certificate_sha256": credential.certificate_sha256,
        },
    )


@credential.command("request")
@click.option("--name", required=True, help="credential name (a label, unique)")
@_PERSON
@_CORPORATION
@click.option("--algorithm", type=click.Choice(ALGORITHMS), default=None)
@click.option(
    "--out",
    "out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="where to write the PKCS#10 request (PEM)",
)
@coded_errors
def credential_request(
    name: str, person_id: str, corporate_number: str, algorithm: str | None, out: Path
) -> None:
    """Generate a key in the HSM for an enrolled employee and write a CSR for an
    external CA (subject: the person as enrolled, 商号, NTRJP-法人番号)."""
    from asn1crypto import pem

    settings = load_cli_settings()
    context = service_context(settings)
    owner = CredentialOwner(person_id, corporate_number)
    with unit_of_work(context.session_factory) as session:
        service = CredentialService(session, context.hsm, context.dev_pki)
        created, csr = service.request(
            name,
            KeyAlgorithm(algorithm or settings.default_key_algorithm),
            service.employee_subject(owner),
            owner,
        )
        _audit_credential(session, "credential:key:requested", created)
    out.write_bytes(pem.armor("CERTIFICATE REQUEST", csr))
    click.echo(f"{created.id}  {created.name}  pending; CSR written to {out}")


@credential.command("import")
@click.option("--name", required=True, help="credential name or id")
@click.option(
    "--cert",
    "cert_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="the certificate (PEM or DER)",
)
@click.option(
    "--chain",
    "chain_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="issuing CA certificates (PEM)",
)
@coded_errors
def credential_import(name: str, cert_file: Path, chain_file: Path | None) -> None:
    """Attach the certificate an external CA returned for a pending credential."""
    context = service_context(load_cli_settings())
    (cert_der, *extra) = read_certificates(cert_file.read_bytes())
    chain = extra + (read_certificates(chain_file.read_bytes()) if chain_file else [])
    with unit_of_work(context.session_factory) as session:
        service = CredentialService(session, context.hsm, context.dev_pki)
        updated = service.import_certificate(name, cert_der, chain)
        _audit_credential(session, "credential:certificate:imported", updated)
        click.echo(f"{updated.id}  {updated.name}  {updated.status}  {updated.subject}")


@credential.command("list")
@coded_errors
def credential_list() -> None:
    """List credentials."""
    context = service_context(load_cli_settings())
    with context.session_factory() as session:
        for c in CredentialService(session, context.hsm, context.dev_pki).list():
            owner = f"{c.person_id}@{c.corporate_number}" if c.person_id else "no owner"
            click.echo(f"{c.id}  {c.name}  {c.algorithm}  {c.key_ref}  {c.status}  {owner}")


@main.command("sign-pdf")
@click.option("--credential", "credential_name", required=True)
@click.option("--level", type=click.Choice(LEVELS), default="B-LT", show_default=True)
@click.option("--reason", default=None)
@click.argument("source", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("target", type=click.Path(dir_okay=False, path_type=Path))
@coded_errors
def sign_pdf(
    credential_name: str, level: str, reason: str | None, source: Path, target: Path
) -> None:
    """Sign a PDF locally with a credential (operator tool; the API adds JPKI and mandates)."""
    from app.signatures.service import SignatureService

    context = service_context(load_cli_settings())
    with unit_of_work(context.session_factory) as session:
        result, record = SignatureService(session, context).sign_pdf(
            credential_name, source.read_bytes(), PadesSpec(level=PadesLevel(level), reason=reason)
        )
    target.write_bytes(result.pdf)
    click.echo(
        f"{target}  {result.level}  sha256={result.signed_document_sha256}  record={record.id}"
    )


@main.command()
@click.option(
    "--out",
    "out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("demo-out"),
    show_default=True,
)
@click.option(
    "--url",
    default=None,
    metavar="URL",
    help="A running service to drive (same settings: database, HSM token); "
    "default: serve one on a free loopback port for the run",
)
@coded_errors
def demo(out: Path, url: str | None) -> None:
    """The newcomer's tour over HTTP on the embedded defaults: a grant, bids and
    e-applications signed under it with card proofs, a sub-delegation, the verification
    report, trust roots and the audit export. Run it again: it reuses its people and
    mandates."""
    from app.dev.demo import run_demo
    from app.dev.demo_login import DemoFailed
    from app.dev.demo_server import DemoServerFailed

    try:
        for line in run_demo(load_cli_settings(), out, url):
            click.echo(line)
    except (DemoFailed, DemoServerFailed) as exc:
        raise click.ClickException(str(exc)) from exc


if __name__ == "__main__":
    main()
