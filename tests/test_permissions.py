"""One permission check (issue 10 item 5): the per-endpoint rule that
app.http.security.allow states, and the per-corporation permissions the services
require, are both answered by app.people.caller.permits. Expectations by hand."""

from __future__ import annotations

import pytest

from app.people.caller import Access, Caller, CallerKind, Permission, permits
from app.people.models import Role

A, B = "9011001000005", "2011001000007"

EMPLOYEE_OF_A = Caller(CallerKind.PERSON, "p1", "山田", employee_of=frozenset({A}))
REPRESENTATIVE_OF_A = Caller(
    CallerKind.REPRESENTATIVE, "t1", "佐藤", representative_of=frozenset({A})
)
AUDITOR = Caller(CallerKind.PERSON, "p2", "監査", roles=frozenset({Role.AUDITOR}))
CLIENT_OF_A = Caller(
    CallerKind.CLIENT, "c1", "RP", scopes=frozenset({"mandates:read"}), client_of=frozenset({A})
)
CLIENT_OF_ALL = Caller(
    CallerKind.CLIENT, "c2", "RP2", scopes=frozenset({"mandates:read"}), all_corporations=True
)

STAFF = Access(frozenset({Role.EMPLOYEE, Role.REPRESENTATIVE}), frozenset({"mandates:read"}))
AUDIT = Access(frozenset({Role.AUDITOR, Role.ADMINISTRATOR}))


@pytest.mark.parametrize(
    "caller, access, corporation, expected",
    [
        (EMPLOYEE_OF_A, STAFF, A, True),
        (EMPLOYEE_OF_A, STAFF, B, False),  # a per-corporation role holds for its corporation
        (EMPLOYEE_OF_A, STAFF, None, True),  # no corporation named: any employer will do
        (REPRESENTATIVE_OF_A, STAFF, A, True),
        (REPRESENTATIVE_OF_A, STAFF, B, False),
        (AUDITOR, STAFF, A, False),  # global roles are not staff
        (AUDITOR, AUDIT, None, True),
        (EMPLOYEE_OF_A, AUDIT, None, False),
        (CLIENT_OF_A, STAFF, A, True),  # a scope, for a corporation it is registered for
        (CLIENT_OF_A, STAFF, B, False),
        (CLIENT_OF_A, STAFF, None, True),
        (CLIENT_OF_ALL, STAFF, B, True),
        (CLIENT_OF_A, AUDIT, None, False),  # no scope the endpoint takes
        (CLIENT_OF_A, Access(frozenset({Role.EMPLOYEE}), frozenset({"audit:read"})), A, False),
    ],
)
def test_who_may_call_an_endpoint(caller, access, corporation, expected):
    assert permits(caller, access, corporation) is expected


def test_an_endpoint_rule_and_a_service_permission_agree_on_reading():
    """A client reads a corporation's data exactly where it may call a reading endpoint
    for it: the same rule (Permission.READ) decides both."""
    for corporation in (A, B):
        assert permits(CLIENT_OF_A, STAFF, corporation) == permits(
            CLIENT_OF_A, Permission.READ, corporation
        )


def test_a_corporation_permission_needs_a_corporation():
    with pytest.raises(ValueError):
        permits(EMPLOYEE_OF_A, Permission.GRANT, None)
