"""The grant instruction's schema in the OpenAPI document (issue 10 item 10), judged by
an independent JSON Schema validator (jsonschema-rs, Draft 2020-12 as OpenAPI 3.1
uses) against instructions the code builds, and against changed ones that the code
refuses too."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import jsonschema_rs
import pytest
import rfc8785

from delegation.instruction import DelegationRefused, GrantInstruction
from delegation.scope import BID, QUOTE, Scope

REF = "#/components/schemas/GrantInstruction"


@pytest.fixture
def document(client) -> dict:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    return response.get_json()


@pytest.fixture
def validator(document):
    schema = document["components"]["schemas"]["GrantInstruction"]
    return jsonschema_rs.Draft202012Validator(schema)


def _instruction(
    parent: str | None = None,
    title: str | None = "代表取締役",
    cases: frozenset[str] | None = None,
    amount: int | None = 100_000_000,
) -> GrantInstruction:
    scope = Scope(
        frozenset({BID, QUOTE}),
        frozenset({"国土交通省 関東地方整備局"}),
        cases,
        amount,
        datetime(2026, 4, 1, tzinfo=UTC),
        datetime(2026, 6, 30, tzinfo=UTC),
        max_depth=1,
    )
    return GrantInstruction(
        "1011001077777",
        "株式会社代理建設",
        "佐藤\u3000一郎",
        title,
        "山田\u3000太郎",
        "ab" * 32,
        scope,
        parent=parent,
        created_at=datetime(2026, 4, 1, 9, 0, 0, tzinfo=UTC),
    )


def test_the_grant_endpoint_names_the_schema(document):
    grant = document["paths"]["/api/v1/mandates"]["post"]
    assert REF in grant["description"]
    body = grant["requestBody"]["content"]["application/json"]["schema"]
    body = (
        document["components"]["schemas"][body["$ref"].rsplit("/", 1)[1]]
        if "$ref" in body
        else body
    )
    assert REF in body["properties"]["instruction"]["description"]
    schema = document["components"]["schemas"]["GrantInstruction"]
    assert schema["properties"]["type"]["const"] == "dairi-grant-instruction/2"
    assert set(schema["required"]) == {
        "type",
        "nonce",
        "created_at",
        "principal",
        "grantor",
        "grantee",
        "parent",
        "scope",
    }


@pytest.mark.parametrize(
    "instruction",
    [
        _instruction(),
        _instruction(
            parent="5b0c7a7e-1f2d-4c4e-9d7a-2b8f0e6a1c33",
            title=None,
            cases=frozenset({"令和8年度 第42号 庁舎清掃業務委託"}),
            amount=None,
        ),
    ],
    ids=["representative", "sub-delegation"],
)
def test_instructions_the_code_builds_satisfy_the_schema(validator, instruction):
    doc = json.loads(instruction.canonical())
    assert [e.message for e in validator.iter_errors(doc)] == []
    assert GrantInstruction.parse(instruction.canonical()) == instruction


def test_the_documented_example_satisfies_the_schema_and_the_code(validator, document):
    [example] = document["components"]["schemas"]["GrantInstruction"]["examples"]
    assert validator.is_valid(example)
    assert (
        GrantInstruction.parse(rfc8785.dumps(example)).principal_corporate_number == "1011001077777"
    )


def _changed(path: tuple[str, ...], value: object) -> dict:
    doc = json.loads(_instruction().canonical())
    target = doc
    for key in path[:-1]:
        target = target[key]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return doc


_DELETE = object()


# Each change written by hand; the schema must refuse it, and so must the code.
@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("type",), "dairi-grant-instruction/1"),
        (("created_at",), "2026-04-01T09:00:00.5Z"),  # not whole seconds
        (("created_at",), "2026-04-01T18:00:00+09:00"),  # not UTC 'Z'
        (("created_at",), _DELETE),
        (("nonce",), "short"),  # fewer than 16 bytes
        (("nonce",), "q2Vd7nPZ3yq0mJ1c4H9XbA=="),  # padded
        (("principal", "corporate_number"), "011001077777"),  # 12 digits
        (("principal", "seal"), "印"),  # a member of no instruction
        (("grantor", "title"), _DELETE),
        (("grantee", "certificate_sha256"), "AB" * 32),  # upper case
        (("grantee", "certificate_sha256"), "ab" * 31),
        (("parent",), _DELETE),
        (("scope", "actions"), []),
        (("scope", "actions"), ["賄賂"]),
        (("scope", "amount_limit_jpy"), 0),
        (("scope", "amount_limit_jpy"), "100"),
        (("scope", "max_depth"), -1),
        (("scope", "not_after"), "2026-06-30"),
        (("scope", "procuring_entities"), []),
        (("scope", "cases"), [" 先頭に空白"]),
        (("extra",), True),
    ],
)
def test_what_the_schema_refuses_the_code_refuses(validator, path, value):
    doc = _changed(path, value)
    assert not validator.is_valid(doc), doc
    with pytest.raises(DelegationRefused) as refused:
        GrantInstruction.parse(rfc8785.dumps(doc))
    assert refused.value.code == "INSTRUCTION_MALFORMED"
