"""What the auditor API asks of the audit trail's proof side (E2's views call these):

- :func:`list_checkpoints` (``GET /api/v1/audit/checkpoints``): rows with ``as_dict()``
  (sequence, head_hash, taken_at, statement, signature and timestamp_token in base64);
- :func:`verification` (``GET /api/v1/audit/verification``): the chain and every
  checkpoint checked now, from the last checkpoint that verifies or from the start,
  as a JSON-ready dict (``intact``, ``first_break`` {sequence, kind, message}, …).

The work is done in :mod:`app.audit_trail.checkpoints`.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from app.audit_trail.checkpoints import (
    export_audit,
    list_checkpoints,
    take_checkpoint,
    trust_for,
    verify_database,
)
from app.context import ServiceContext

__all__ = [
    "export_audit",
    "list_checkpoints",
    "take_checkpoint",
    "trust_for",
    "verification",
    "verify_database",
]


def verification(
    ctx: ServiceContext, source: Session | sessionmaker[Session], *, from_start: bool
) -> dict[str, Any]:
    """The verdict as a dict. ``source``: the request's session (all read in its
    transaction) or ``ctx.session_factory`` (pages in short transactions of their
    own; on SQLite only once the request's session holds no transaction)."""
    report = verify_database(source, trust_for(ctx), from_checkpoint=not from_start)
    result = report.as_dict()
    result["checked_from"] = (
        "start" if from_start or report.first_sequence in (None, 1) else "checkpoint"
    )
    return result
