"""``dairi aa …``: the production attribute authority's key (issue 10 item 2)."""

from __future__ import annotations

import os
from pathlib import Path

import click
from asn1crypto import pem
from asn1crypto import x509 as asn1_x509

from app.cli.support import coded_errors, load_cli_settings
from hsm import Hsm, KeyAlgorithm
from hsm.csr import build_csr


@click.group("aa")
def aa_group() -> None:
    """The attribute authority that issues mandate ACs and signs the 電子委任状."""


@aa_group.command("create-key")
@click.option(
    "--csr",
    "out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="where to write the certificate request (PEM)",
)
@click.option("--common-name", default="dairi Attribute Authority", show_default=True)
@click.option("--organization", default=None, help="O= of the request's subject")
@click.option(
    "--algorithm",
    type=click.Choice(["rsa-2048", "rsa-3072"]),
    default="rsa-2048",
    show_default=True,
    help="the AA signs with RSA PKCS#1 v1.5",
)
@coded_errors
def create_key(out: Path, common_name: str, organization: str | None, algorithm: str) -> None:
    """Generate the AA's key in the HSM and write a PKCS#10 request for a CA.

    Have the CA issue an end-entity certificate with keyUsage digitalSignature,
    nonRepudiation and cRLSign; then set aa_key_label to the label printed here and
    aa_certificate_file to the certificate (PEM, followed by its issuers).
    """
    settings = load_cli_settings()
    if settings.uses_softhsm and "SOFTHSM2_CONF" not in os.environ:
        os.environ["SOFTHSM2_CONF"] = str(settings.softhsm2_conf)
    if out.exists():
        raise click.UsageError(f"{out} exists; not overwritten")
    subject: dict[str, str] = {"country_name": "JP"}
    if organization:
        subject["organization_name"] = organization
    subject["common_name"] = common_name
    hsm = Hsm(settings.hsm)
    try:
        ref = hsm.generate_key(KeyAlgorithm(algorithm))
        der = build_csr(hsm, ref, asn1_x509.Name.build(subject, use_printable=False))
    finally:
        hsm.close()
    out.write_bytes(pem.armor("CERTIFICATE REQUEST", der))
    click.echo(f'aa_key_label = "{ref.cka_label}"')
    click.echo(f"request       {out}")
