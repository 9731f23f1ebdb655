"""Corporations, enrolment of employees, roles and API clients."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask_smorest import Blueprint
from sqlalchemy import select

from app.audit_trail.log import AuditLog, record_refusal
from app.http.paging import page_of
from app.http.problems import ProblemError
from app.http.request_scope import (
    audit_refusals,
    current_context,
    get_session,
    refusal_recorded,
)
from app.http.schemas import PageArgs, corporate_number_field, guard_json_body
from app.http.security import SCOPES, allow, current_caller
from app.people.enrolment import EnrolmentService
from app.people.models import (
    GLOBAL_ROLES,
    ApiClient,
    Corporation,
    Employment,
    Person,
    Role,
    RoleAssignment,
)
from app.people.sign_in import AuthError, AuthService
from app.people.sign_in_views import ProofSchema, card_proof
from dairi import DairiError

blp = Blueprint(
    "people",
    __name__,
    url_prefix="/api/v1",
    description="Corporations, employee enrolment, roles and API clients",
)
blp.before_request(guard_json_body)
# Every refusal these endpoints answer is audited (app.http.request_scope); invitation
# and enrolment refusals are recorded here with their own tags.
audit_refusals(blp.name, "people:request:refused")

CORPORATION = "corporate_number"


def _services() -> tuple[AuthService, EnrolmentService]:
    context = current_context()
    auth = AuthService(
        get_session(),
        context.settings,
        context.certificate_validator,
        context.clock,
        hsm=context.hsm,
    )
    return auth, EnrolmentService(get_session(), context.settings, auth, context.clock)


class CorporationSchema(ma.Schema):
    corporate_number = ma.fields.String()
    registered_number = ma.fields.String()
    name = ma.fields.String()
    joint_representatives = ma.fields.Integer(
        metadata={"description": "Distinct representatives who must sign a grant (共同代表)"}
    )
    created_at = ma.fields.DateTime()


class EmployeeSchema(ma.Schema):
    person_id = ma.fields.String()
    name = ma.fields.String()
    status = ma.fields.String()
    enrolled_at = ma.fields.DateTime()
    rebound_at = ma.fields.DateTime(allow_none=True)


class EmployeePageSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(EmployeeSchema))
    page = ma.fields.Integer()
    page_size = ma.fields.Integer()
    total = ma.fields.Integer()


class InvitationRequestSchema(ma.Schema):
    name = ma.fields.String(
        validate=ma.validate.Length(min=1, max=200),
        metadata={"description": "The employee's name as on the My Number Card (氏名)"},
    )
    person_id = ma.fields.String(
        metadata={
            "description": "An enrolled employee re-binding a reissued card (instead of name)"
        }
    )

    @ma.validates_schema
    def one_of(self, data: dict[str, Any], **kwargs: Any) -> None:
        if ("name" in data) == ("person_id" in data):
            raise ma.ValidationError("give either name (new employee) or person_id (re-bind)")


class InvitationSchema(ma.Schema):
    id = ma.fields.String()
    code = ma.fields.String(metadata={"description": "Shown once; give it to the employee"})
    corporate_number = ma.fields.String()
    name = ma.fields.String()
    rebind = ma.fields.Boolean()
    expires_at = ma.fields.DateTime()


class EnrolmentRequestSchema(ma.Schema):
    invitation_code = ma.fields.String(required=True, validate=ma.validate.Length(max=200))
    challenge_id = ma.fields.String(required=True, validate=ma.validate.Length(max=64))
    authentication = ma.fields.Nested(
        ProofSchema,
        required=True,
        metadata={"description": "JPKI authentication certificate and its signature over to_sign"},
    )
    signing = ma.fields.Nested(
        ProofSchema,
        required=True,
        metadata={
            "description": "JPKI signing certificate and its signature over the same to_sign"
        },
    )


class EnrolmentSchema(ma.Schema):
    person_id = ma.fields.String()
    name = ma.fields.String()
    corporate_number = ma.fields.String()
    rebound = ma.fields.Boolean()


class RoleAssignmentRequestSchema(ma.Schema):
    person_id = ma.fields.String(required=True)
    role = ma.fields.String(
        required=True, validate=ma.validate.OneOf([r.value for r in GLOBAL_ROLES])
    )


class RoleAssignmentSchema(ma.Schema):
    id = ma.fields.String()
    person_id = ma.fields.String()
    role = ma.fields.String()
    granted_by = ma.fields.String()
    created_at = ma.fields.DateTime()


class ClientRequestSchema(ma.Schema):
    name = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=200))
    scopes = ma.fields.List(
        ma.fields.String(validate=ma.validate.OneOf(SCOPES)),
        required=True,
        validate=ma.validate.Length(min=1),
    )
    corporations = ma.fields.List(
        corporate_number_field(),
        validate=ma.validate.Length(min=1, max=1000),
        metadata={"description": "The corporations (法人番号) whose data the client reads"},
    )
    all_corporations = ma.fields.Boolean(
        load_default=False,
        metadata={
            "description": "Instead of corporations: the client reads every corporation's data"
        },
    )

    @ma.validates_schema
    def corporations_or_all(self, data: dict[str, Any], **kwargs: Any) -> None:
        if bool(data.get("corporations")) == data["all_corporations"]:
            raise ma.ValidationError("give either corporations or all_corporations: true")


class ClientSchema(ma.Schema):
    client_id = ma.fields.String()
    client_secret = ma.fields.String(
        allow_none=True,
        metadata={"description": "Shown once, when the client is registered; null afterwards"},
    )
    name = ma.fields.String()
    scopes = ma.fields.List(ma.fields.String())
    corporations = ma.fields.List(
        ma.fields.String(),
        metadata={"description": "The corporations (法人番号) whose data the client reads"},
    )
    all_corporations = ma.fields.Boolean(
        metadata={
            "description": "The client reads every corporation's data (registered so by an "
            "administrator)"
        }
    )
    created_at = ma.fields.DateTime()
    revoked_at = ma.fields.DateTime(allow_none=True)


class ClientListSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(ClientSchema))


def corporation_row(corporate_number: str) -> Corporation:
    row = get_session().get(Corporation, corporate_number)
    if row is None:
        raise ProblemError("CORPORATION_NOT_FOUND", detail="no such corporation")
    return row


@blp.route("/corporations/<corporate_number>", methods=["GET"])
@allow(
    Role.EMPLOYEE,
    Role.REPRESENTATIVE,
    Role.AUDITOR,
    Role.ADMINISTRATOR,
    scopes=("employees:read",),
    corporation_arg=CORPORATION,
)
@blp.response(200, CorporationSchema)
def get_corporation(corporate_number: str) -> Corporation:
    """A corporation known to dairi."""
    return corporation_row(corporate_number)


class JointRepresentationSchema(ma.Schema):
    representatives = ma.fields.Integer(
        required=True,
        validate=ma.validate.Range(min=1, max=10),
        metadata={"description": "1: any one representative"},
    )


@blp.route("/corporations/<corporate_number>/joint-representation", methods=["PUT"])
@allow(Role.ADMINISTRATOR)
@blp.arguments(JointRepresentationSchema)
@blp.response(200, JointRepresentationSchema)
def set_joint_representation(args: dict[str, Any], corporate_number: str) -> dict[str, Any]:
    """Set how many distinct representatives must sign one grant instruction, as the
    commercial register records the corporation's joint representation (共同代表)."""
    row = corporation_row(corporate_number)
    row.joint_representatives = args["representatives"]
    AuditLog(get_session()).append(
        "corporation:joint-representation:set",
        actor=current_caller().actor,
        principal=corporate_number,
        details={"representatives": args["representatives"]},
    )
    return {"representatives": row.joint_representatives}


@blp.route("/corporations/<corporate_number>/employees", methods=["GET"])
@allow(
    Role.EMPLOYEE,
    Role.REPRESENTATIVE,
    Role.AUDITOR,
    Role.ADMINISTRATOR,
    scopes=("employees:read",),
    corporation_arg=CORPORATION,
)
@blp.arguments(PageArgs, location="query")
@blp.response(200, EmployeePageSchema)
def list_employees(args: dict[str, Any], corporate_number: str) -> dict[str, Any]:
    """The enrolled employees of a corporation (names only; no other personal data)."""
    return employee_page(args, corporate_number)


def employee_page(args: dict[str, Any], corporate_number: str) -> dict[str, Any]:
    """One page of a corporation's employees (the API's and the console's)."""
    corporation_row(corporate_number)
    query = (
        select(Person)
        .join(Employment)
        .where(Employment.corporate_number == corporate_number, Employment.ended_at.is_(None))
        .order_by(Person.enrolled_at, Person.id)
    )
    page = page_of(get_session(), query, args)
    page["items"] = [
        {
            "person_id": p.id,
            "name": p.name,
            "status": p.status,
            "enrolled_at": p.enrolled_at,
            "rebound_at": p.rebound_at,
        }
        for p in page["items"]
    ]
    return page


@blp.route("/corporations/<corporate_number>/invitations", methods=["POST"])
@allow(Role.REPRESENTATIVE, Role.ADMINISTRATOR, corporation_arg=CORPORATION)
@blp.arguments(InvitationRequestSchema)
@blp.response(201, InvitationSchema)
def invite(args: dict[str, Any], corporate_number: str) -> dict[str, Any]:
    """Invite an employee to enrol for the corporation, or to re-bind a reissued card
    (never a holder of an administrator or auditor role: ``REBIND_NOT_PERMITTED``)."""
    return invite_employee(corporate_number, args.get("name", ""), args.get("person_id"))


def invite_employee(corporate_number: str, name: str, person_id: str | None) -> dict[str, Any]:
    """An invitation made by the caller (the API's and the console's); refusals audited."""
    _, enrolment = _services()
    try:
        issued = enrolment.invite(
            corporate_number,
            name,
            created_by=current_caller().actor,
            person_id=person_id,
        )
    except DairiError as exc:
        get_session().rollback()
        record_refusal(
            current_context().session_factory,
            "enrolment:invitation:refused",
            actor=current_caller().actor,
            code=exc.code,
            principal=corporate_number,
            subject=person_id,
        )
        refusal_recorded()
        raise
    row = issued.row
    return {
        "id": row.id,
        "code": issued.code,
        "corporate_number": row.corporate_number,
        "name": row.name,
        "rebind": row.person_id is not None,
        "expires_at": row.expires_at,
    }


@blp.route("/enrolments", methods=["POST"])
@blp.arguments(EnrolmentRequestSchema)
@blp.response(201, EnrolmentSchema)
def enrol(args: dict[str, Any]) -> dict[str, Any]:
    """Enrol with an invitation code and proofs from both certificates of the card
    over one ``enrolment`` challenge. No credentials needed: the invitation and
    the proofs are the credentials."""
    context = current_context()
    session = get_session()
    try:
        proofs = {part: card_proof(args[part]) for part in ("authentication", "signing")}
        _, enrolment = _services()
        enrolled = enrolment.enrol(
            args["invitation_code"],
            args["challenge_id"],
            proofs["authentication"],
            proofs["signing"],
        )
    except DairiError as exc:
        session.rollback()
        record_refusal(
            context.session_factory,
            "enrolment:person:refused",
            actor="anonymous",
            code=exc.code,
            subject=args["challenge_id"],
        )
        refusal_recorded()
        raise
    return {
        "person_id": enrolled.person.id,
        "name": enrolled.person.name,
        "corporate_number": enrolled.corporate_number,
        "rebound": enrolled.rebound,
    }


@blp.route("/role-assignments", methods=["POST"])
@allow(Role.ADMINISTRATOR)
@blp.arguments(RoleAssignmentRequestSchema)
@blp.response(201, RoleAssignmentSchema)
def assign_role(args: dict[str, Any]) -> RoleAssignment:
    """Grant an enrolled person a service-wide role (auditor or administrator)."""
    session = get_session()
    if session.get(Person, args["person_id"]) is None:
        raise ProblemError("PERSON_NOT_FOUND", detail="no such person")
    existing = session.scalar(
        select(RoleAssignment).where(
            RoleAssignment.person_id == args["person_id"], RoleAssignment.role == args["role"]
        )
    )
    if existing is not None:
        raise ProblemError("ROLE_ALREADY_ASSIGNED", detail="the person holds that role")
    actor = current_caller().actor
    row = RoleAssignment(person_id=args["person_id"], role=args["role"], granted_by=actor)
    session.add(row)
    session.flush()
    AuditLog(session).append(
        "role:assignment:granted",
        actor=actor,
        subject=args["person_id"],
        details={"role": args["role"]},
    )
    return row


@blp.route("/role-assignments/<assignment_id>", methods=["DELETE"])
@allow(Role.ADMINISTRATOR)
@blp.response(204)
def remove_role(assignment_id: str) -> None:
    """Take a service-wide role away (effective for live tokens at once)."""
    session = get_session()
    row = session.get(RoleAssignment, assignment_id)
    if row is None:
        raise ProblemError("ROLE_ASSIGNMENT_NOT_FOUND", detail="no such role assignment")
    actor = current_caller().actor
    AuditLog(session).append(
        "role:assignment:removed", actor=actor, subject=row.person_id, details={"role": row.role}
    )
    session.delete(row)


def _client(row: ApiClient, secret: str | None = None) -> dict[str, Any]:
    return {
        "client_id": row.client_id,
        "client_secret": secret,
        "name": row.name,
        "scopes": row.scopes.split(),
        "corporations": row.corporate_numbers,
        "all_corporations": row.all_corporations,
        "created_at": row.created_at,
        "revoked_at": row.revoked_at,
    }


@blp.route("/clients", methods=["POST"])
@allow(Role.ADMINISTRATOR)
@blp.arguments(ClientRequestSchema)
@blp.response(201, ClientSchema)
def create_client(args: dict[str, Any]) -> dict[str, Any]:
    """Register a relying party (e.g. a procurement system) for the corporations whose
    data it reads (法人番号), or for all of them; the secret is shown once."""
    auth, _ = _services()
    actor = current_caller().actor
    issued = auth.create_client(
        args["name"],
        tuple(args["scopes"]),
        actor,
        corporations=tuple(args.get("corporations", ())),
        all_corporations=args["all_corporations"],
    )
    AuditLog(auth.session).append(
        "client:registration:created",
        actor=actor,
        subject=issued.row.client_id,
        details={
            "scopes": issued.row.scopes.split(),
            "corporations": issued.row.corporate_numbers,
            "all_corporations": issued.row.all_corporations,
        },
    )
    return _client(issued.row, issued.client_secret)


@blp.route("/clients", methods=["GET"])
@allow(Role.ADMINISTRATOR, Role.AUDITOR)
@blp.response(200, ClientListSchema)
def list_clients() -> dict[str, Any]:
    """The registered API clients (never their secrets)."""
    rows = get_session().scalars(select(ApiClient).order_by(ApiClient.created_at))
    return {"items": [_client(r) for r in rows]}


@blp.route("/clients/<client_id>", methods=["DELETE"])
@allow(Role.ADMINISTRATOR)
@blp.response(204)
def revoke_client(client_id: str) -> None:
    """Revoke an API client's credentials at once."""
    auth, _ = _services()
    row = auth.session.scalar(select(ApiClient).where(ApiClient.client_id == client_id))
    if row is None:
        raise AuthError("no such API client", "CLIENT_NOT_FOUND")
    row.revoked_at = current_context().clock()
    AuditLog(auth.session).append(
        "client:registration:revoked", actor=current_caller().actor, subject=client_id
    )
