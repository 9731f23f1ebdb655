"""The command line's scope options, shared by ``dairi client grant`` and
``dairi client sub-delegate``: what the mandate lets its holder do, and for how long.
A grant's omitted dimension means "any"; a sub-delegation's means "the parent's"."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from app.client.grants import GrantTerms, parse_moment

# Help for a root grant, and for a sub-delegation (narrowed from the parent mandate).
_HELP = {
    False: {
        "actions": "bid, quote, contract, …",
        "entities": "a procuring entity (default: any)",
        "cases": "a case (default: any)",
        "amount_limit": "yen",
        "not_before": "ISO 8601 (UTC unless an offset; default now)",
        "not_after": "ISO 8601 (UTC unless an offset; default +90 days)",
    },
    True: {
        "actions": "within the parent's",
        "entities": "default: the parent's",
        "cases": "default: the parent's",
        "amount_limit": "default: parent's",
        "not_before": "ISO 8601 (default now)",
        "not_after": "ISO 8601 (default: the parent's end)",
    },
}


def scope_options(*, within_parent: bool) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Add ``--action``, ``--entity``, ``--case``, ``--amount-limit``, ``--not-before``,
    ``--not-after`` and ``--sub-delegation-depth``; :func:`take_terms` reads them."""
    help_for = _HELP[within_parent]

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        options = [
            click.option(
                "--action", "actions", multiple=True, required=True, help=help_for["actions"]
            ),
            click.option("--entity", "entities", multiple=True, help=help_for["entities"]),
            click.option("--case", "cases", multiple=True, help=help_for["cases"]),
            click.option(
                "--amount-limit",
                type=click.IntRange(min=1),
                default=None,
                help=help_for["amount_limit"],
            ),
            click.option("--not-before", default=None, help=help_for["not_before"]),
            click.option("--not-after", default=None, help=help_for["not_after"]),
            click.option(
                "--sub-delegation-depth", type=click.IntRange(min=0), default=0, show_default=True
            ),
        ]
        for option in reversed(options):
            command = option(command)
        return command

    return decorate


SCOPE_KEYS = (
    "actions",
    "entities",
    "cases",
    "amount_limit",
    "not_before",
    "not_after",
    "sub_delegation_depth",
)


def take_terms(kwargs: dict[str, Any]) -> GrantTerms:
    """The scope the options give (removed from ``kwargs``)."""
    given = {key: kwargs.pop(key) for key in SCOPE_KEYS}
    return GrantTerms(
        given["actions"],
        given["entities"],
        given["cases"],
        given["amount_limit"],
        parse_moment(given["not_before"]) if given["not_before"] else None,
        parse_moment(given["not_after"]) if given["not_after"] else None,
        given["sub_delegation_depth"],
    )
