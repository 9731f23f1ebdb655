"""The keyed digest of the four basic items (issue 9 item 1): HMAC-SHA256 inside the
HSM with a secret key that is generated there on first need, found by label
afterwards, and can never be read out."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import date

import pkcs11
import pytest
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass

from app.people.identity_digest import IDENTITY_KEY_LABEL, identity_digest
from hsm import KeyNotFound
from hsm.device import SECRET_KEY_TEMPLATE
from identity.profiles import BirthDate, JpkiPersonalData, basic_items_document

ITEMS = JpkiPersonalData(
    name="山田\u3000太郎",
    sex="male",
    birth_date=BirthDate(date(1990, 1, 15), "平成"),
    address="東京都千代田区霞が関一丁目1番1号",
)


def test_the_key_is_generated_once_inside_the_token_and_cannot_be_read(hsm):
    label = f"test:{secrets.token_hex(4)}"
    key_id = hsm.secret_key_id(label)
    assert hsm.secret_key_id(label) == key_id  # found by label afterwards
    with hsm._session() as session:
        keys = list(
            session.get_objects({Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.LABEL: label})
        )
        assert len(keys) == 1
        key = keys[0]
        assert key.key_type == KeyType.GENERIC_SECRET
        assert (
            key[Attribute.TOKEN],
            key[Attribute.SENSITIVE],
            key[Attribute.EXTRACTABLE],
            key[Attribute.NEVER_EXTRACTABLE],
            key[Attribute.LOCAL],
        ) == (True, True, False, True, True)
        assert key[Attribute.ENCRYPT] is False and key[Attribute.DERIVE] is False
        with pytest.raises(pkcs11.AttributeSensitive):
            key[Attribute.VALUE]


def test_the_mac_is_hmac_sha256(hsm):
    """A key of known value imported beside it gives what Python's hmac computes: the
    mechanism is HMAC-SHA256 over exactly the given bytes."""
    label, key_id, value = (
        f"test:{secrets.token_hex(4)}",
        secrets.token_bytes(16),
        secrets.token_bytes(32),
    )
    with hsm._session() as session:
        session.create_object(
            {
                Attribute.CLASS: ObjectClass.SECRET_KEY,
                Attribute.KEY_TYPE: KeyType.GENERIC_SECRET,
                Attribute.ID: key_id,
                Attribute.LABEL: label,
                Attribute.VALUE: value,
                Attribute.TOKEN: False,
                Attribute.SIGN: True,
            }
        )
    data = basic_items_document(ITEMS)
    assert (
        hsm.hmac_sha256(label, key_id.hex(), data) == hmac.new(value, data, hashlib.sha256).digest()
    )
    with pytest.raises(KeyNotFound):
        hsm.hmac_sha256(label, "00" * 16, data)


def test_racing_creators_settle_on_one_key_and_both_keys_keep_working(hsm):
    label = f"test:{secrets.token_hex(4)}"
    first = hsm.secret_key_id(label)
    with hsm._session() as session:  # a second process created one at the same moment
        session.generate_key(
            KeyType.GENERIC_SECRET,
            256,
            id=bytes.fromhex("00" * 16),
            label=label,
            store=True,
            template=SECRET_KEY_TEMPLATE,
            mechanism=Mechanism.GENERIC_SECRET_KEY_GEN,
        )
    assert hsm.secret_key_id(label) == "00" * 16  # the smallest id, in every process
    data = basic_items_document(ITEMS)
    assert hsm.hmac_sha256(label, first, data) != hsm.hmac_sha256(label, "00" * 16, data)


def test_the_digest_changes_with_each_item_and_ignores_spaces_in_the_name(hsm):
    digest = identity_digest(hsm, ITEMS)
    assert digest.key_id == hsm.secret_key_id(IDENTITY_KEY_LABEL)
    same = JpkiPersonalData(
        name="山田 太郎",
        sex=ITEMS.sex,
        birth_date=ITEMS.birth_date,
        address=ITEMS.address,
        name_flags="0000",
    )
    assert identity_digest(hsm, same).matches(digest)
    others = [
        JpkiPersonalData(
            name="山田\u3000次郎", sex=ITEMS.sex, birth_date=ITEMS.birth_date, address=ITEMS.address
        ),
        JpkiPersonalData(
            name=ITEMS.name, sex="female", birth_date=ITEMS.birth_date, address=ITEMS.address
        ),
        JpkiPersonalData(
            name=ITEMS.name,
            sex=ITEMS.sex,
            birth_date=BirthDate(date(1990, 1, 16), "平成"),
            address=ITEMS.address,
        ),
        JpkiPersonalData(
            name=ITEMS.name,
            sex=ITEMS.sex,
            birth_date=ITEMS.birth_date,
            address="東京都千代田区霞が関一丁目1番2号",
        ),
    ]
    assert not any(identity_digest(hsm, other).matches(digest) for other in others)
    assert len(digest.digest) == 64 and "霞" not in repr(digest)
