"""The command line's card options, shared by every ``dairi client`` command that signs:
``--card DIR`` (a virtual card), ``--p12 FILE`` (a PKCS#12 file; its password from
``--p12-password-file`` or ``$DAIRI_P12_PASSWORD``, never a flag's value) or
``--pkcs11-module …`` (a key on a PKCS#11 token; the PIN from ``--pkcs11-pin-file`` or
``$DAIRI_CARD_PIN``)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from app.client.api import ClientError
from app.client.cards import (
    Card,
    CardUnusable,
    Pkcs11Card,
    Pkcs11Location,
    directory_card,
    pkcs12_card,
)

P12_PASSWORD_ENV = "DAIRI_P12_PASSWORD"  # noqa: S105 - the variable's name, not a password
CARD_PIN_ENV = "DAIRI_CARD_PIN"


def _secret(file: Path | None, env: str, what: str) -> str | None:
    if file is not None:
        try:
            return file.read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            raise CardUnusable(f"cannot read the {what} file {file}") from exc
    return os.environ.get(env)


def card_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The card source: ``--card DIR`` | ``--p12 FILE`` | ``--pkcs11-module …``."""
    options = [
        click.option(
            "--card",
            "card_dir",
            type=click.Path(file_okay=False, path_type=Path),
            help="a virtual card directory (dairi dev card create)",
        ),
        click.option(
            "--card-role",
            type=click.Choice(["authentication", "signing", "representative"]),
            help="which key of the virtual card (default: the one this command needs)",
        ),
        click.option(
            "--p12",
            "p12_file",
            type=click.Path(dir_okay=False, path_type=Path),
            help=f"a PKCS#12 file (password: --p12-password-file or ${P12_PASSWORD_ENV})",
        ),
        click.option("--p12-password-file", type=click.Path(dir_okay=False, path_type=Path)),
        click.option("--pkcs11-module", help="a PKCS#11 module (e.g. OpenSC's opensc-pkcs11.so)"),
        click.option("--pkcs11-token", help="the token's label"),
        click.option("--pkcs11-slot", type=int, help="the slot number (instead of the label)"),
        click.option("--pkcs11-key-label", help="the key's (and certificate's) label"),
        click.option("--pkcs11-key-id", help="the key's (and certificate's) id, hex"),
        click.option(
            "--pkcs11-pin-file",
            type=click.Path(dir_okay=False, path_type=Path),
            help=f"the card's PIN (default: ${CARD_PIN_ENV})",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


CARD_KEYS = (
    "card_dir",
    "card_role",
    "p12_file",
    "p12_password_file",
    "pkcs11_module",
    "pkcs11_token",
    "pkcs11_slot",
    "pkcs11_key_label",
    "pkcs11_key_id",
    "pkcs11_pin_file",
)


def take_card(kwargs: dict[str, Any], my_number_role: str) -> Card:
    """The card the options name (removed from ``kwargs``); ``my_number_role`` is the key
    of a virtual My Number Card this command uses unless ``--card-role`` says."""
    given = {key: kwargs.pop(key) for key in CARD_KEYS}
    sources = [given["card_dir"], given["p12_file"], given["pkcs11_module"]]
    if sum(source is not None for source in sources) != 1:
        raise ClientError("name one card: --card, --p12 or --pkcs11-module", "INPUT_INVALID")
    if given["card_dir"] is not None:
        from devpki.cards import MY_NUMBER, load_card

        role = given["card_role"]
        if role is None and load_card(given["card_dir"]).kind == MY_NUMBER:
            role = my_number_role
        return directory_card(given["card_dir"], role)
    if given["p12_file"] is not None:
        password = _secret(given["p12_password_file"], P12_PASSWORD_ENV, "PKCS#12 password")
        return pkcs12_card(given["p12_file"], password.encode() if password is not None else None)
    try:
        key_id = bytes.fromhex(given["pkcs11_key_id"]) if given["pkcs11_key_id"] else None
    except ValueError as exc:
        raise ClientError("--pkcs11-key-id is not hex", "INPUT_INVALID") from exc
    location = Pkcs11Location(
        given["pkcs11_module"],
        given["pkcs11_token"],
        given["pkcs11_slot"],
        given["pkcs11_key_label"],
        key_id,
    )
    return Pkcs11Card(location, _secret(given["pkcs11_pin_file"], CARD_PIN_ENV, "PIN"))
