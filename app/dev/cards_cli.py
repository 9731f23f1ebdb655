"""``dairi cert inspect`` and ``dairi dev card create|sign`` (registered in :mod:`app.cli.main`).

Operator tools on the operator's own files: they print personal data on request
and log nothing.
"""

from __future__ import annotations

import base64
import binascii
import json
from pathlib import Path
from typing import Any

import click
from cryptography.hazmat.primitives import serialization

from app.cli.support import coded_errors
from app.first_run import ensure_environment
from app.settings import load_settings
from dairi import DairiError
from devpki import DevPki
from devpki.cards import (
    CARD_FILES,
    MY_NUMBER,
    REPRESENTATIVE,
    issue_my_number_card,
    issue_representative_card,
    load_card,
    save_card,
)
from identity.certificate_files import describe_certificate, load_certificate
from identity.corporate_number import check_digit

ROLES = sorted({role for files in CARD_FILES.values() for role in files})


class RequestMalformed(DairiError):
    """Input that cannot be decoded (e.g. bad base64)."""

    code = "REQUEST_MALFORMED"


# -- dairi cert ----------------------------------------------------------------


@click.group()
def cert() -> None:
    """Certificates as dairi reads them."""


@cert.command("inspect")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="print one JSON object")
@coded_errors
def cert_inspect(file: Path, as_json: bool) -> None:
    """Print what dairi reads from a certificate (PEM or DER), personal data included."""
    # Classified by the installation's policy settings, as the validator does.
    description = describe_certificate(
        load_certificate(file.read_bytes()), load_settings().policy_oids
    )
    if as_json:
        click.echo(json.dumps(description, ensure_ascii=False, indent=2))
        return
    width = max(len(key) for key in description)
    for key, value in description.items():
        click.echo(f"{key:<{width}}  {_text(value)}")


def _text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "-"
    if isinstance(value, dict):
        return "; ".join(f"[{k}] {v}" for k, v in value.items()) or "-"
    return str(value)


# -- dairi dev card ------------------------------------------------------------


@click.group()
def card() -> None:
    """Virtual cards (My Number Card, representative's registration certificate) from
    the development PKI."""


@card.command("create")
@click.option("--kind", type=click.Choice([MY_NUMBER, REPRESENTATIVE]), required=True)
@click.option(
    "--out",
    "out",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="directory to write the card into (must not hold a card yet)",
)
@click.option(
    "--name",
    default="山田\u3000太郎",
    show_default=True,
    help="my-number: 氏名, family and given name separated by U+3000",
)
@click.option(
    "--birth-date",
    default="419900115",
    show_default=True,
    help="my-number: EYYYYMMDD (era code 1-5, or 0 不明; Gregorian date)",
)
@click.option(
    "--sex",
    type=click.Choice(["1", "2", "3"]),
    default="1",
    show_default=True,
    help="my-number: JPKI code: 1 男, 2 女, 3 不明",
)
@click.option(
    "--address",
    default="東京都千代田区霞が関一丁目1番1号",
    show_default=True,
    help="my-number: address",
)
@click.option("--prefecture", default="東京都", show_default=True, help="my-number: subject L")
@click.option("--city", default="千代田区", show_default=True, help="my-number: subject L")
@click.option("--test-card", is_flag=True, help="my-number: use the test-card policy")
@click.option(
    "--corporate-name",
    default="株式会社サンプル商事",
    show_default=True,
    help="representative: 商号",
)
@click.option(
    "--registered-number",
    default="011001098993",
    show_default=True,
    help="representative: 会社法人等番号 (12 digits)",
)
@click.option(
    "--head-office-address",
    default="東京都千代田区丸の内一丁目1番1号",
    show_default=True,
    help="representative: 本店",
)
@click.option(
    "--representative-name",
    default="佐藤一郎",
    show_default=True,
    help="representative: name (written without spaces, as real ones are)",
)
@click.option("--title", default="代表取締役", show_default=True, help="representative: title")
@click.option(
    "--registry-office", default="東京法務局", show_default=True, help="representative: 登記所"
)
@coded_errors
def card_create(
    kind: str,
    out: Path,
    name: str,
    birth_date: str,
    sex: str,
    address: str,
    prefecture: str,
    city: str,
    test_card: bool,
    corporate_name: str,
    registered_number: str,
    head_office_address: str,
    representative_name: str,
    title: str,
    registry_office: str,
) -> None:
    """Issue a virtual card from the development PKI and save it in a directory."""
    settings = load_settings()
    ensure_environment(settings)
    pki = DevPki(settings.pki_dir)
    if kind == MY_NUMBER:
        issued: Any = issue_my_number_card(
            pki,
            name=name,
            birth_date=birth_date,
            sex=sex,
            address=address,
            prefecture=prefecture,
            city=city,
            test_card=test_card,
        )
    else:
        check_digit(registered_number)  # CORPORATE_NUMBER_INVALID unless 12 digits
        issued = issue_representative_card(
            pki,
            corporate_name=corporate_name,
            registered_number=registered_number,
            head_office_address=head_office_address,
            representative_name=representative_name,
            representative_title=title,
            registry_office=registry_office,
        )
    saved = save_card(issued, out)
    click.echo(f"{saved.kind} card written to {out}")
    for role, (cert_file, key_file) in CARD_FILES[saved.kind].items():
        click.echo(f"  {role:<14}  {out / cert_file}  {out / key_file}")


@card.command("sign")
@click.option(
    "--card",
    "card_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    required=True,
)
@click.option(
    "--certificate",
    "role",
    type=click.Choice(ROLES),
    default=None,
    help="which key signs [default: authentication, or representative]",
)
@click.option("--data-base64", default=None, help="the bytes to sign, base64")
@click.option(
    "--data-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="the bytes to sign, from a file",
)
@click.option(
    "--json", "as_json", is_flag=True, help='print {"certificate": base64 DER, "signature": base64}'
)
@coded_errors
def card_sign(
    card_dir: Path, role: str | None, data_base64: str | None, data_file: Path | None, as_json: bool
) -> None:
    """Sign bytes as the card would: RSA PKCS#1 v1.5 over their SHA-256 DigestInfo."""
    if (data_base64 is None) == (data_file is None):
        raise click.UsageError("give exactly one of --data-base64 and --data-file")
    data = _decode_base64(data_base64) if data_base64 is not None else data_file.read_bytes()  # type: ignore[union-attr]
    virtual = load_card(card_dir).role(role)
    signature = base64.b64encode(virtual.sign(data)).decode("ascii")
    if not as_json:
        click.echo(signature)
        return
    certificate = base64.b64encode(
        virtual.certificate.public_bytes(serialization.Encoding.DER)
    ).decode("ascii")
    click.echo(json.dumps({"certificate": certificate, "signature": signature}))


def _decode_base64(text: str) -> bytes:
    """Standard, padded base64 (line breaks allowed); nothing lenient."""
    compact = "".join(text.split())
    try:
        data = base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise RequestMalformed("--data-base64 is not standard base64") from exc
    if base64.b64encode(data).decode("ascii") != compact:
        raise RequestMalformed("--data-base64 is not canonical standard base64")
    return data
