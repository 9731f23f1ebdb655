"""What every ``dairi`` command shares: coded errors and the service context."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any

import click

from app.context import ServiceContext
from app.first_run import ensure_environment
from app.settings import Settings, SettingsError, load_settings
from dairi import DairiError


def fail(code: str, message: str) -> None:
    click.echo(f"error {code}: {message}", err=True)
    sys.exit(2)


def coded_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Show errors that carry a stable code as ``error CODE: message`` and exit 2."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except SettingsError as exc:
            fail("CONFIGURATION_INVALID", str(exc))
        except DairiError as exc:
            fail(exc.code, exc.message)

    return wrapper


def load_cli_settings() -> Settings:
    return load_settings()


def service_context(current: Settings) -> ServiceContext:
    """The environment made ready (token, database, development PKI), and its context."""
    ensure_environment(current)
    return ServiceContext(current)
