"""``dairi verify FILE``: the API's verification report, offline (no network, no
database) unless ``--online``, from a trust directory; exit 0 when every signature
passed (TOTAL_PASSED), 1 when one failed (TOTAL_FAILED), 2 when it could not be decided
(INDETERMINATE) or the input is not a signed document (``error CODE: reason``).

``--format text`` (the default: 検証結果 in Japanese, or ``--lang en``), ``json`` (the
API's JSON; ``--json`` says the same) or ``pdf`` (the 検証結果 as an A4 PDF to file,
which needs ``--out``). With ``--out FILE`` the rendering goes to the file and only its
first line, the verdict, to the terminal."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import click

from app.cli.support import coded_errors, fail, load_cli_settings
from app.verification.service import (
    purpose_from,
    report_pdf,
    trust_from_directory,
    verify_document,
)
from signing.report import LANGUAGES, render_text
from signing.verification import DEFAULT_MAX_BYTES, Indication

FORMATS = ("text", "json", "pdf")

# The exit status a script acts on (issue 13): passed, failed, or not decided.
_EXIT_STATUS = {
    Indication.TOTAL_PASSED: 0,
    Indication.TOTAL_FAILED: 1,
    Indication.INDETERMINATE: 2,
}


@click.command("verify")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--principal", "--purpose-principal", "principal", help="法人番号 acted for")
@click.option("--action", help="the purpose's action, e.g. bid")
@click.option("--procuring-entity", "--entity", "procuring_entity", help="発注機関")
@click.option("--case", help="案件 (工事・業務番号)")
@click.option("--amount", type=int, help="amount in yen")
@click.option(
    "--trust-dir",
    "--trust",
    "trust_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="service.pem, tsa.pem, registrar.pem, aa.pem, *.crl (default: the configured"
    " trust directory)",
)
@click.option(
    "--online",
    is_flag=True,
    help="fetch revocation data the document lacks (OCSP/CRL over the network)",
)
@click.option(
    "--format",
    "output_format",
    type=click.Choice(FORMATS),
    default="text",
    show_default=True,
    help="text (検証結果), json (the API's report) or pdf (needs --out)",
)
@click.option("--json", "as_json", is_flag=True, help="the same as --format json")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="write the rendering to this file (the verdict line still goes to the terminal)",
)
@click.option(
    "--detached",
    type=click.Path(dir_okay=False, path_type=Path),
    multiple=True,
    help="the document a detached XAdES signature signs, named by its file name (repeatable)",
)
@click.option(
    "--pdf",
    "pdf_out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="also write the report (検証結果) as a PDF to this file",
)
@click.option("--lang", type=click.Choice(LANGUAGES), default="ja", show_default=True)
@coded_errors
def verify_command(
    file: Path,
    principal: str | None,
    action: str | None,
    procuring_entity: str | None,
    case: str | None,
    amount: int | None,
    trust_dir: Path | None,
    online: bool,
    output_format: str,
    as_json: bool,
    out: Path | None,
    detached: tuple[Path, ...],
    pdf_out: Path | None,
    lang: str,
) -> None:
    """Verify the signatures of a signed PDF or XML, and the mandates they were made under."""
    if as_json:
        output_format = "json"
    if output_format == "pdf" and out is None:
        fail("INPUT_INVALID", "--format pdf writes the 検証結果 to a file: give --out FILE")
    settings = load_cli_settings()
    if trust_dir is None:
        trust_dir = settings.trust_dir
    if not trust_dir.is_dir():
        fail("INPUT_INVALID", f"no trust directory at {trust_dir}")
    document = _read(file)
    signed_documents = {path.name: _read(path) for path in detached}
    fields = {
        "principal": principal,
        "action": action,
        "procuring_entity": procuring_entity,
        "case": case,
        "amount": amount,
    }
    asked = {k: v for k, v in fields.items() if v is not None}
    purpose = purpose_from(asked) if asked else None
    trust = trust_from_directory(trust_dir, representative_titles=settings.representative_titles)
    report = verify_document(
        document,
        replace(trust, allow_fetching=online),
        purpose,
        max_bytes=DEFAULT_MAX_BYTES,
        detached=signed_documents,
    )
    if pdf_out is not None:
        pdf_out.write_bytes(report_pdf(report, lang))
    text = render_text(report, lang)
    if output_format == "pdf":
        rendered: str | bytes = report_pdf(report, lang)
    elif output_format == "json":
        rendered = json.dumps(report.to_json(), ensure_ascii=False, indent=2) + "\n"
    else:
        rendered = text
    if out is None:
        click.echo(rendered, nl=False)
    else:
        try:
            if isinstance(rendered, bytes):
                out.write_bytes(rendered)
            else:
                out.write_text(rendered, encoding="utf-8")
        except OSError as exc:
            fail("INPUT_INVALID", f"cannot write {out}: {exc.strerror}")
        click.echo(text.splitlines()[0] if text else "")
    sys.exit(_EXIT_STATUS[report.indication])


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        fail("INPUT_INVALID", f"cannot read {path}: {exc.strerror}")
        raise  # not reached: fail() exits
