"""``dairi mandates``: jobs on the mandates (電子委任状)."""

from __future__ import annotations

import click

from app.cli.support import coded_errors, load_cli_settings, service_context
from app.mandates.sweep import sweep
from app.unit_of_work import unit_of_work


@click.group("mandates")
def mandates_group() -> None:
    """Mandates (電子委任状)."""


@mandates_group.command("sweep")
@coded_errors
def mandates_sweep() -> None:
    """Record what changed outside dairi (a periodic job; run it every few minutes).

    Records each root representative whose registration certificate was revoked after
    the grant (for any reason but renewal), with the time its CRL or OCSP answer
    gives, so the authority query leaves those chains out from then on; and re-makes
    the attribute authority's CRL when it nears its nextUpdate. One transaction.
    """
    context = service_context(load_cli_settings())
    with unit_of_work(context.session_factory) as session:
        report = sweep(
            session, context.certificate_validator, context.attribute_authority, context.clock
        )
    click.echo(f"roots checked            {report.roots_checked}")
    click.echo(f"representatives revoked  {len(report.representative_revoked)}")
    for mandate_id in report.representative_revoked:
        click.echo(f"  {mandate_id}")
    click.echo(f"AC CRL re-made           {'yes' if report.crl_renewed else 'no'}")
