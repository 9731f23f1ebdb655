"""``dairi mandates sweep`` (issue 10 item 5): the periodic job that records a root
representative's later revocation, which reading a chain no longer does.

Expected behaviour from DESIGN §5 (a root's representative revoked before T, for any
reason but renewal, fails the chain at T) and the README's sweep paragraph, through
the command line on the test's database and the HTTP API.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from click.testing import CliRunner
from cryptography import x509
from helpers_auth import bearer, login
from helpers_mandates import ENTITY, now, root_grant, scope, sub_grant

from app.audit_trail.log import AuditLog
from app.cli.main import main
from app.mandates.models import Mandate, PublishedCrl


def sweep_cli() -> str:
    result = CliRunner().invoke(main, ["mandates", "sweep"])
    assert result.exit_code == 0, result.output
    return result.output


def recorded(app, mandate_id: str):
    with app.extensions["dairi"].session_factory() as session:
        return session.get(Mandate, mandate_id).representative_revoked_at


def events(app, tag: str) -> list[dict]:
    with app.extensions["dairi"].session_factory() as session:
        log = AuditLog(session)
        log.verify()
        return [
            {"subject": r.subject, "actor": r.actor, **json.loads(r.details)}
            for r in log.events()
            if r.tag == tag
        ]


def authority(client, corp, token: str) -> list[str]:
    response = client.get(
        "/api/v1/authority",
        headers=bearer(token),
        query_string={
            "principal": corp.corporate_number,
            "action": "bid",
            "procuring_entity": ENTITY,
        },
    )
    assert response.status_code == 200, response.get_json()
    return [a["mandate_id"] for a in response.get_json()["authorities"]]


@pytest.mark.parametrize(
    "reason", [x509.ReasonFlags.key_compromise, x509.ReasonFlags.cessation_of_operation]
)
def test_the_sweep_records_a_representatives_revocation(
    client, app, hsm, pki, world, cli_env, reason
):
    a, yamada, suzuki = world["a"], world["yamada"], world["suzuki"]
    root = root_grant(client, a, yamada, scope(max_depth=1))
    child = sub_grant(client, hsm, a, root, yamada, suzuki)
    rep_token = login(client, a.representative)
    assert sorted(authority(client, a, rep_token)) == sorted([root["id"], child["id"]])
    # Nothing to record yet.
    assert "representatives revoked  0" in sweep_cli()
    assert recorded(app, root["id"]) is None

    revoked_at = now()
    pki.ca_for_slug("registrar").revoke(
        a.representative.certificate.serial_number, reason, now=revoked_at
    )
    output = sweep_cli()
    assert "representatives revoked  1" in output and root["id"] in output
    # Recorded with the CRL's revocation time (whole seconds), not the sweep's.
    at = recorded(app, root["id"])
    assert at is not None and abs(at - revoked_at) <= timedelta(seconds=1)
    assert recorded(app, child["id"]) is None  # a sub-delegation has no representative
    [event] = events(app, "mandate:representative-revoked")
    assert event["subject"] == root["id"] and event["actor"] == "service:sweep"
    assert event["reason"] == reason.name

    # The authority query, which reads only what is recorded, leaves both out now...
    assert authority(client, a, rep_token) == []
    # ... and the chain fails from that time on.
    verdict = client.get(
        f"/api/v1/mandates/{child['id']}/chain",
        headers=bearer(suzuki.token),
        query_string={"action": "bid", "procuring_entity": ENTITY},
    )
    assert verdict.get_json()["holds"] is False
    assert verdict.get_json()["hops"][0]["reasons"] == ["REPRESENTATIVE_CERT_REVOKED"]

    # A second sweep records nothing again.
    assert "representatives revoked  0" in sweep_cli()
    assert len(events(app, "mandate:representative-revoked")) == 1


def test_a_renewed_representative_certificate_is_not_recorded(client, app, pki, world, cli_env):
    a, yamada = world["a"], world["yamada"]
    root = root_grant(client, a, yamada)
    pki.ca_for_slug("registrar").revoke(
        a.representative.certificate.serial_number, x509.ReasonFlags.superseded, now=now()
    )
    assert "representatives revoked  0" in sweep_cli()
    assert recorded(app, root["id"]) is None
    assert events(app, "mandate:representative-revoked") == []
    assert authority(client, a, yamada.token) == [root["id"]]


def test_the_sweep_renews_the_aa_crl_near_its_next_update(client, app, cli_env):
    context = app.extensions["dairi"]
    with context.session_factory() as session, session.begin():
        row = session.get(PublishedCrl, 1)
        row.next_update = now() + timedelta(minutes=1)  # within the renewal margin
    assert "AC CRL re-made           yes" in sweep_cli()
    with context.session_factory() as session:
        row = session.get(PublishedCrl, 1)
        assert row.next_update > now() + timedelta(minutes=10)
    assert "AC CRL re-made           no" in sweep_cli()
