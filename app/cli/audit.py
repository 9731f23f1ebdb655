"""``dairi audit``: checkpoints, the offline export and its verification (issue 14).

    dairi audit checkpoint [--if-due]      sign and time-stamp the head now (or if due)
    dairi audit key-request OUT.csr        production: the audit key, made in the token
    dairi audit export DIR [--from N] [--to N]
    dairi audit verify DIR [--trust DIR] [--json]   offline: exit 0 intact, 1 not
    dairi audit verify --online [--from-checkpoint] [--json]   the database, now

``verify DIR`` needs neither the database nor the service (it is ``python -m audit
verify``); every other command works on the configured database and token.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from app.audit_trail.checkpoints import (
    export_audit,
    take_checkpoint,
    trust_for,
    verify_database,
)
from app.cli.support import coded_errors, fail, load_cli_settings, service_context
from audit.__main__ import format_report
from audit.export import verify_export


@click.group("audit")
def audit_group() -> None:
    """The tamper-evident audit trail: checkpoints, export, verification."""


@audit_group.command("checkpoint")
@click.option(
    "--if-due",
    "if_due",
    is_flag=True,
    help="only when audit_checkpoint_interval_seconds has passed and the head moved",
)
@coded_errors
def checkpoint(if_due: bool) -> None:
    """Sign the chain's head with the audit key and have the TSA time-stamp it."""
    context = service_context(load_cli_settings())
    try:
        row = take_checkpoint(context, if_due=if_due)
    finally:
        context.close()
    if row is None:
        click.echo("no checkpoint taken (empty log, or none due)")
        return
    click.echo(
        f"checkpoint {row.sequence} {row.head_hash} {row.taken_at.isoformat()}"
        f"{' time-stamped' if row.timestamp_der else ''}"
    )


@audit_group.command("key-request")
@click.argument("csr_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--common-name", "common_name", default="dairi Audit", show_default=True)
@click.option("--organization", default=None, help="O= of the subject")
@click.option(
    "--algorithm",
    type=click.Choice(["rsa-2048", "rsa-3072", "ec-p256"]),
    default="rsa-2048",
    show_default=True,
)
@coded_errors
def key_request(csr_file: Path, common_name: str, organization: str | None, algorithm: str) -> None:
    """Production: generate the audit key in the token and write a PKCS#10 request
    (PEM) for the service CA. Then set audit_key_id to the id printed and
    audit_certificate_file to the certificate the CA returns (with its issuers)."""
    from asn1crypto import pem
    from asn1crypto import x509 as asn1_x509

    from hsm import KeyAlgorithm, build_csr

    if csr_file.exists():
        fail("INPUT_INVALID", f"{csr_file} exists")
    context = service_context(load_cli_settings())
    try:
        ref = context.hsm.generate_key(KeyAlgorithm(algorithm))
        subject = {"common_name": common_name}
        if organization:
            subject = {"organization_name": organization, **subject}
        der = build_csr(context.hsm, ref, asn1_x509.Name.build(subject))
    finally:
        context.close()
    csr_file.write_bytes(pem.armor("CERTIFICATE REQUEST", der))
    click.echo(f'audit_key_id = "{ref.key_id}"')
    click.echo(f"request       {csr_file}")


@audit_group.command("export")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--from", "first", type=click.IntRange(min=1), default=None)
@click.option("--to", "last", type=click.IntRange(min=1), default=None)
@coded_errors
def export(directory: Path, first: int | None, last: int | None) -> None:
    """Write events, checkpoints, certificates and a manifest to DIR (new or empty)."""
    if first is not None and last is not None and first > last:
        fail("INPUT_INVALID", "--from is after --to")
    context = service_context(load_cli_settings())
    try:
        summary = export_audit(context, directory, first=first, last=last)
    finally:
        context.close()
    click.echo(
        f"exported events {summary.first_sequence}-{summary.last_sequence}"
        f" ({summary.events}) and {summary.checkpoints} checkpoints to {directory}"
    )


@audit_group.command("verify")
@click.argument(
    "directory", required=False, type=click.Path(exists=True, file_okay=False, path_type=Path)
)
@click.option(
    "--trust",
    "trust_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="your own roots (PEM files; audit.pem there pins the audit key)",
)
@click.option("--online", is_flag=True, help="verify the database instead of an export")
@click.option(
    "--from-checkpoint",
    "from_checkpoint",
    is_flag=True,
    help="online: start at the last checkpoint that verifies",
)
@click.option("--json", "as_json", is_flag=True)
@coded_errors
def verify(
    directory: Path | None,
    trust_dir: Path | None,
    online: bool,
    from_checkpoint: bool,
    as_json: bool,
) -> None:
    """Exit 0 when intact; 1 with the first broken sequence and the kind of break."""
    if online == (directory is not None):
        fail("INPUT_INVALID", "give an export DIR or --online, not both")
    if directory is not None:
        report = verify_export(directory, trust_dir)
    else:
        context = service_context(load_cli_settings())
        try:
            with context.session_factory() as session:
                report = verify_database(
                    session, trust_for(context), from_checkpoint=from_checkpoint
                )
        finally:
            context.close()
    click.echo(format_report(report.as_dict(), as_json=as_json))
    sys.exit(0 if report.intact else 1)


__all__ = ["audit_group"]
