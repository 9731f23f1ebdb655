"""``dairi admin create``: the first administrator, bootstrapped from the command line.

The operator names the person's JPKI certificates; dairi validates both (path,
policy, revocation now), keeps the name from the signing certificate, binds the
authentication certificate for login and grants the administrator role. Later
administrators and auditors are granted through the API by an administrator.
"""

from __future__ import annotations

from pathlib import Path

import click
from sqlalchemy import select

from app.audit_trail.log import AuditLog
from app.cli.support import coded_errors, load_cli_settings, service_context
from app.people.identity_digest import bind_signing_certificate, identity_digest
from app.people.models import Person, Role, RoleAssignment
from app.unit_of_work import unit_of_work
from identity.certificate_files import load_certificate
from identity.trust import TrustPurpose


@click.group()
def admin() -> None:
    """Service administrators."""


@admin.command("create")
@click.option(
    "--auth-cert",
    "auth_cert",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="JPKI authentication certificate (PEM or DER)",
)
@click.option(
    "--sign-cert",
    "sign_cert",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="JPKI signing certificate of the same card (PEM or DER)",
)
@coded_errors
def admin_create(auth_cert: Path, sign_cert: Path) -> None:
    """Make the holder of these My Number Card certificates an administrator."""
    context = service_context(load_cli_settings())
    validator = context.certificate_validator
    authenticated = validator.validate_now(
        load_certificate(auth_cert.read_bytes()), TrustPurpose.JPKI_AUTH
    )
    signed = validator.validate_now(
        load_certificate(sign_cert.read_bytes()), TrustPurpose.JPKI_SIGN
    )
    assert signed.personal_data is not None
    with unit_of_work(context.session_factory) as session:
        person = session.scalar(
            select(Person).where(Person.auth_certificate_sha256 == authenticated.sha256)
        )
        if person is None:
            person = Person(
                name=signed.personal_data.name,
                auth_certificate_sha256=authenticated.sha256,
                auth_certificate_der=authenticated.der,
            )
            bind_signing_certificate(
                person,
                signed,
                identity_digest(context.hsm, signed.personal_data),
                keep_personal_data=context.settings.keep_personal_data,
            )
            session.add(person)
            session.flush()
        held = session.scalar(
            select(RoleAssignment).where(
                RoleAssignment.person_id == person.id, RoleAssignment.role == Role.ADMINISTRATOR
            )
        )
        if held is None:
            session.add(
                RoleAssignment(person_id=person.id, role=Role.ADMINISTRATOR.value, granted_by="cli")
            )
            AuditLog(session).append(
                "role:assignment:granted",
                actor="cli",
                subject=person.id,
                details={"role": Role.ADMINISTRATOR.value},
            )
        person_id, name = person.id, person.name
    click.echo(
        f"administrator {name} (person {person_id})"
        f"{'' if held is None else ' already held the role'}"
    )
