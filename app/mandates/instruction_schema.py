"""The grant instruction (``dairi-grant-instruction/2``) as a JSON Schema in the OpenAPI
document's ``components.schemas``: what a client builds, signs and sends base64-encoded
in ``POST /api/v1/mandates``.

The schema says what :meth:`delegation.instruction.GrantInstruction.parse` accepts as
far as JSON Schema (2020-12, as OpenAPI 3.1 uses it) can: every member required and
no others, ``type``, the time format (UTC, whole seconds, ``Z``), the 法人番号's form,
the lower-case SHA-256, the bounds of names, lists and numbers. What it cannot say is
in the descriptions and checked by the service: the canonical form (RFC 8785: keys
sorted, lists sorted, no white space), the 法人番号's check digit, the nonce's decoded
length, control characters in names, and freshness.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask_smorest import Blueprint

from delegation.instruction import FUTURE_SKEW, INSTRUCTION_TYPE, NONCE_BYTES
from delegation.mandate_terms import PARTY_NAME_MAX_LENGTH, TITLE_MAX_LENGTH
from delegation.scope import JSON_INTEGER_MAX, NAME_MAX_LENGTH, NAMES_MAX

SCHEMA_NAME = "GrantInstruction"
SCHEMA_REF = f"#/components/schemas/{SCHEMA_NAME}"

_UTC_SECONDS = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$"
# base64url without padding of 16 to 64 bytes: 22 to 86 characters.
_NONCE = r"^[A-Za-z0-9_-]{22,86}$"
_ACTION = r"^(?:bid|quote|contract|invoice|e-application:\*|e-application:[^\s*]+)$"


def _name(max_length: int, description: str, *, padded: bool = True) -> dict[str, Any]:
    return {
        "type": "string",
        "minLength": 1,
        "maxLength": max_length,
        # not blank; a scope's names also carry no white space at either end
        "pattern": r"\S" if padded else r"^\S(?:.*\S)?$",
        "description": description + " (no control characters)",
    }


def _names(description: str) -> dict[str, Any]:
    return {
        "type": ["array", "null"],
        "minItems": 1,
        "maxItems": NAMES_MAX,
        "uniqueItems": True,
        "items": _name(NAME_MAX_LENGTH, "a name", padded=False),
        "description": description + "; sorted; null: any",
    }


def _time(description: str) -> dict[str, Any]:
    return {
        "type": "string",
        "pattern": _UTC_SECONDS,
        "examples": ["2026-04-01T00:00:00Z"],
        "description": description + " — UTC in whole seconds, written YYYY-MM-DDTHH:MM:SSZ",
    }


def _object(properties: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "type": "object",
        "required": sorted(properties),
        "additionalProperties": False,
        "properties": properties,
        "description": description,
    }


GRANT_INSTRUCTION_SCHEMA: dict[str, Any] = {
    **_object(
        {
            "type": {
                "type": "string",
                "const": INSTRUCTION_TYPE,
                "description": "The instruction format; other versions are refused",
            },
            "nonce": {
                "type": "string",
                "pattern": _NONCE,
                "description": f"Fresh for every instruction: {NONCE_BYTES} to 64 random bytes, "
                "base64url without padding. Each instruction is accepted once (409 "
                "INSTRUCTION_REPLAYED)",
            },
            "created_at": _time(
                "When the grantor made the instruction. Accepted for instruction_max_age_seconds "
                f"after it and at most {int(FUTURE_SKEW.total_seconds())} s ahead of the "
                "service's clock (422 INSTRUCTION_STALE)"
            ),
            "principal": _object(
                {
                    "corporate_number": {
                        "type": "string",
                        "pattern": r"^[1-9][0-9]{12}$",
                        "description": "法人番号: 13 digits, the first a valid check digit",
                    },
                    "name": _name(NAME_MAX_LENGTH, "商号, as on the registration certificate"),
                },
                "The corporation that grants (委任者)",
            ),
            "grantor": _object(
                {
                    "name": _name(
                        PARTY_NAME_MAX_LENGTH,
                        "The representative's name, or the parent mandate's grantee's",
                    ),
                    "title": {
                        "type": ["string", "null"],
                        "minLength": 1,
                        "maxLength": TITLE_MAX_LENGTH,
                        "pattern": r"\S",
                        "description": "The representative's title (代表取締役 …); null for "
                        "a sub-delegation",
                    },
                },
                "Who signs the instruction",
            ),
            "grantee": _object(
                {
                    "name": _name(PARTY_NAME_MAX_LENGTH, "The employee's name as enrolled"),
                    "certificate_sha256": {
                        "type": "string",
                        "pattern": "^[0-9a-f]{64}$",
                        "description": "SHA-256 (lower-case hex) of the grantee's "
                        "signing certificate (DER): the AC holder",
                    },
                },
                "Who receives the mandate (受任者)",
            ),
            "parent": {
                "type": ["string", "null"],
                "minLength": 1,
                "pattern": r"\S",
                "description": "The parent mandate's id for a sub-delegation (復代理); "
                "null for a representative's grant",
            },
            "scope": _object(
                {
                    "actions": {
                        "type": "array",
                        "minItems": 1,
                        "maxItems": NAMES_MAX,
                        "uniqueItems": True,
                        "items": {
                            "type": "string",
                            "maxLength": NAME_MAX_LENGTH,
                            "pattern": _ACTION,
                        },
                        "description": "bid, quote, contract, invoice, "
                        "e-application:<procedure> or e-application:*; sorted",
                    },
                    "procuring_entities": _names(
                        "The procuring entities (調達機関) it is limited to"
                    ),
                    "cases": _names("The cases (案件) it is limited to"),
                    "amount_limit_jpy": {
                        "type": ["integer", "null"],
                        "minimum": 1,
                        "maximum": JSON_INTEGER_MAX,
                        "description": "Upper limit in yen; null: no limit",
                    },
                    "not_before": _time("Start of validity (inclusive)"),
                    "not_after": _time("End of validity (exclusive), after not_before"),
                    "max_depth": {
                        "type": "integer",
                        "minimum": 0,
                        "maximum": JSON_INTEGER_MAX,
                        "description": "How many further sub-delegations are allowed "
                        "below this mandate (0: none)",
                    },
                },
                "What is granted; a sub-delegation's scope lies within its parent's",
            ),
        },
        "A grant instruction (電子委任状の指図), sent as the base64 of its canonical JSON "
        "(RFC 8785: members sorted, lists sorted, no white space; other bytes are refused "
        "as 422 INSTRUCTION_MALFORMED) and signed as it is sent (detached CMS).",
    ),
    "title": INSTRUCTION_TYPE,
    "examples": [
        {
            "type": INSTRUCTION_TYPE,
            "nonce": "q2Vd7nPZ3yq0mJ1c4H9XbA",
            "created_at": "2026-04-01T09:00:00Z",
            "principal": {"corporate_number": "1011001077777", "name": "株式会社代理建設"},
            "grantor": {"name": "佐藤\u3000一郎", "title": "代表取締役"},
            "grantee": {"name": "山田\u3000太郎", "certificate_sha256": "ab" * 32},
            "parent": None,
            "scope": {
                "actions": ["bid", "quote"],
                "procuring_entities": ["国土交通省 関東地方整備局"],
                "cases": None,
                "amount_limit_jpy": 100000000,
                "not_before": "2026-04-01T00:00:00Z",
                "not_after": "2026-06-30T00:00:00Z",
                "max_depth": 1,
            },
        }
    ],
}


class SchemaComponentsBlueprint(Blueprint):
    """A Blueprint that also puts JSON Schemas of its own (schemas not written as
    marshmallow classes, such as what a base64 field carries) in the OpenAPI document's
    ``components.schemas``, once per document."""

    def __init__(self, *args: Any, schemas: Mapping[str, dict[str, Any]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.component_schemas = dict(schemas)

    def register_views_in_doc(
        self, api: Any, app: Any, spec: Any, *, name: str, parameters: Any
    ) -> None:
        for key, schema in self.component_schemas.items():
            if key not in spec.components.schemas:
                spec.components.schema(key, schema)
        super().register_views_in_doc(api, app, spec, name=name, parameters=parameters)
