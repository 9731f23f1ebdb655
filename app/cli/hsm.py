"""``dairi hsm …``: the operator's commands for the HSM login."""

from __future__ import annotations

import click

from app.cli.support import coded_errors, load_cli_settings
from hsm import Hsm


@click.group("hsm")
def hsm_group() -> None:
    """The HSM token and its login."""


@hsm_group.command("unlock")
@coded_errors
def hsm_unlock() -> None:
    """Let the service try the user PIN again after the token refused it.

    After a refused login no process tries that PIN again (a real HSM locks the PIN
    after a few tries) until the PIN file changes or this command is run — run it
    once the PIN or the token has been put right. The running service picks it up
    at its next request; no restart is needed.
    """
    settings = load_cli_settings()
    if Hsm(settings.hsm).unlock():
        click.echo(f"login allowed again for token {settings.hsm_token_label}")
    else:
        click.echo(f"no refused login was recorded for token {settings.hsm_token_label}")
