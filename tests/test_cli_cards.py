"""``dairi cert inspect`` and ``dairi dev card create|sign`` through click's CliRunner."""

from __future__ import annotations

import base64
import json
import re
import stat

import pytest
from asn1crypto import pem
from click.testing import CliRunner
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from helpers_cli import cli_environment

from app.cli.main import main
from devpki.cards import issue_representative_card, load_card, save_card
from identity.certificate_files import describe_certificate, load_certificate
from identity.corporate_number import validate_corporate_number
from identity.profiles import JPKI_AUTH_POLICY, JPKI_SIGN_POLICY, REGISTRATION_POLICY

ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


@pytest.fixture(scope="module")
def cli_env(base_settings, softhsm_dir, pki, tmp_path_factory):
    """Settings for the CLI through DAIRI_* variables, on the session's token and PKI."""
    data = tmp_path_factory.mktemp("cli-cards")
    env = cli_environment(
        base_settings.replace(data_dir=data, database_url=f"sqlite:///{data / 'dairi.db'}")
    )
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        yield env


def run(*args: str):
    return CliRunner().invoke(main, list(args))


def inspect_json(path) -> dict:
    result = run("cert", "inspect", "--json", str(path))
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def verify(cert_pem: bytes, signature_b64: str, data: bytes) -> None:
    public_key = x509.load_pem_x509_certificate(cert_pem).public_key()
    public_key.verify(base64.b64decode(signature_b64), data, padding.PKCS1v15(), hashes.SHA256())


@pytest.fixture(scope="module")
def my_number_dir(cli_env, tmp_path_factory):
    out = tmp_path_factory.mktemp("cards") / "my-number"
    result = run("dev", "card", "create", "--kind", "my-number", "--out", str(out))
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def representative_dir(cli_env, tmp_path_factory):
    out = tmp_path_factory.mktemp("cards") / "representative"
    result = run(
        "dev",
        "card",
        "create",
        "--kind",
        "representative",
        "--out",
        str(out),
        "--corporate-name",
        "株式会社テスト物産",
        "--registered-number",
        "120901007402",
        "--representative-name",
        "鈴木\u3000花子",
        "--title",
        "代表執行役",
        "--registry-office",
        "大阪法務局",
    )
    assert result.exit_code == 0, result.output
    return out


def test_my_number_card_directory(my_number_dir):
    names = {"auth-cert.pem", "auth-key.pem", "sign-cert.pem", "sign-key.pem", "card.json"}
    assert {p.name for p in my_number_dir.iterdir()} == names
    for key in ("auth-key.pem", "sign-key.pem"):
        assert stat.S_IMODE((my_number_dir / key).stat().st_mode) == 0o600
    manifest = json.loads((my_number_dir / "card.json").read_text(encoding="utf-8"))
    assert manifest["kind"] == "my-number"
    assert manifest["certificates"] == {
        "authentication": {"certificate": "auth-cert.pem", "key": "auth-key.pem"},
        "signing": {"certificate": "sign-cert.pem", "key": "sign-key.pem"},
    }


def test_inspect_jpki_signing_certificate(my_number_dir):
    info = inspect_json(my_number_dir / "sign-cert.pem")
    assert info["kind"] == "jpki-sign"
    assert info["name"] == "山田\u3000太郎"
    assert info["sex"] == "1"  # the raw JPKI code (男)
    assert info["birth_date"] == "1990-01-15"
    assert info["birth_era"] == "平成"
    assert info["address"] == "東京都千代田区霞が関一丁目1番1号"
    assert info["name_substitute_flags"] == "0000"
    assert info["address_substitute_flags"] == "0" * len(info["address"])
    assert info["policies"] == [JPKI_SIGN_POLICY]
    assert info["key_usage"] == ["digitalSignature", "nonRepudiation"]
    assert info["subject"].startswith("C=JP, L=東京都, L=千代田区, CN=")
    assert info["issuer"] == (
        "C=JP, O=JPKI, OU=JPKI for digital signature, "
        "OU=Japan Agency for Local Authority Information Systems"
    )
    assert ISO_UTC.match(info["not_before"]) and ISO_UTC.match(info["not_after"])
    assert int(info["serial_number"], 16) > 0


def test_inspect_jpki_authentication_certificate_has_no_personal_data(my_number_dir):
    info = inspect_json(my_number_dir / "auth-cert.pem")
    assert info["kind"] == "jpki-auth"
    assert info["policies"] == [JPKI_AUTH_POLICY]
    assert info["key_usage"] == ["digitalSignature"]
    assert not {"name", "sex", "birth_date", "address"} & info.keys()


def test_my_number_options_reach_the_certificate(cli_env, tmp_path):
    out = tmp_path / "card"
    result = run(
        "dev",
        "card",
        "create",
        "--kind",
        "my-number",
        "--out",
        str(out),
        "--name",
        "田中\u3000次郎",
        "--birth-date",
        "520200229",
        "--sex",
        "2",
        "--address",
        "大阪府大阪市北区1番",
        "--prefecture",
        "大阪府",
        "--city",
        "大阪市",
    )
    assert result.exit_code == 0, result.output
    info = inspect_json(out / "sign-cert.pem")
    assert (info["name"], info["sex"], info["birth_date"], info["birth_era"]) == (
        "田中\u3000次郎",
        "2",
        "2020-02-29",
        "令和",
    )
    assert info["subject"].startswith("C=JP, L=大阪府, L=大阪市, CN=")


def test_representative_card_and_inspection(representative_dir):
    assert {p.name for p in representative_dir.iterdir()} == {"cert.pem", "key.pem", "card.json"}
    assert stat.S_IMODE((representative_dir / "key.pem").stat().st_mode) == 0o600
    info = inspect_json(representative_dir / "cert.pem")
    assert info["kind"] == "corporate-registration"
    assert info["corporate_name"] == "株式会社テスト物産"
    assert info["registered_number"] == "120901007402"
    assert info["corporate_number"] == "2120901007402"
    assert validate_corporate_number(info["corporate_number"]) == info["corporate_number"]
    assert info["representative_name"] == "鈴木花子"  # written without spaces, as real ones
    assert info["representative_title"] == "代表執行役"
    assert info["registry_office"] == "大阪法務局"
    assert info["head_office_address"] == "東京都千代田区丸の内一丁目1番1号"
    assert info["registrar"] == "東京法務局登記官"
    assert info["registration_policies"] == [REGISTRATION_POLICY]
    assert info["other_fields"] == {}
    assert info["key_usage"] == ["digitalSignature", "nonRepudiation"]


def test_a_card_of_unknown_birth_era_and_sex_is_made_and_read_raw(cli_env, tmp_path):
    out = tmp_path / "card"
    result = run(
        "dev",
        "card",
        "create",
        "--kind",
        "my-number",
        "--out",
        str(out),
        "--birth-date",
        "019800000",
        "--sex",
        "3",
    )
    assert result.exit_code == 0, result.output
    info = inspect_json(out / "sign-cert.pem")
    assert (info["sex"], info["birth_date"], info["birth_date_raw"], info["birth_era"]) == (
        "3",
        None,
        "019800000",
        "不明",
    )


def test_default_representative_card_has_the_documented_corporate_number(cli_env, tmp_path):
    result = run("dev", "card", "create", "--kind", "representative", "--out", str(tmp_path / "r"))
    assert result.exit_code == 0, result.output
    info = inspect_json(tmp_path / "r" / "cert.pem")
    assert (info["registered_number"], info["corporate_number"]) == (
        "011001098993",
        "4011001098993",
    )
    assert info["representative_title"] == "代表取締役"


def test_human_readable_inspection_is_aligned(representative_dir):
    result = run("cert", "inspect", str(representative_dir / "cert.pem"))
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    width = len("registration_policies")  # the longest key
    assert all(line[width : width + 2] == "  " for line in lines)
    assert any(re.match(r"^corporate_number +2120901007402$", line) for line in lines)
    assert any(re.match(r"^other_fields +-$", line) for line in lines)


def test_der_and_pem_read_the_same(my_number_dir, tmp_path):
    (_, _, der) = pem.unarmor((my_number_dir / "sign-cert.pem").read_bytes())
    der_file = tmp_path / "sign.cer"
    der_file.write_bytes(der)
    assert inspect_json(der_file) == inspect_json(my_number_dir / "sign-cert.pem")
    assert load_certificate(der) == der


@pytest.mark.parametrize("content", [b"not a certificate", b"\x30\x03\x02\x01\x01", b""])
def test_garbage_is_certificate_malformed(cli_env, tmp_path, content):
    garbage = tmp_path / "garbage.pem"
    garbage.write_bytes(content)
    for args in (["--json"], []):
        result = run("cert", "inspect", *args, str(garbage))
        assert result.exit_code == 2
        assert "error CERTIFICATE_MALFORMED" in result.output


def test_a_key_file_is_not_a_certificate(my_number_dir):
    result = run("cert", "inspect", str(my_number_dir / "auth-key.pem"))
    assert result.exit_code == 2 and "error CERTIFICATE_MALFORMED" in result.output
    assert "PRIVATE" not in result.output


def test_malformed_registered_number_keeps_its_code(cli_env, pki, tmp_path):
    bad = issue_representative_card(
        pki,
        corporate_name="株式会社不正",
        registered_number="01100109899",
        head_office_address="東京都",
        representative_name="某",
        representative_title="代表取締役",
    )
    save_card(bad, tmp_path / "bad")
    result = run("cert", "inspect", str(tmp_path / "bad" / "cert.pem"))
    assert result.exit_code == 2 and "error CORPORATE_NUMBER_INVALID" in result.output
    refused = run(
        "dev",
        "card",
        "create",
        "--kind",
        "representative",
        "--out",
        str(tmp_path / "refused"),
        "--registered-number",
        "01100109899X",
    )
    assert refused.exit_code == 2 and "error CORPORATE_NUMBER_INVALID" in refused.output
    assert not (tmp_path / "refused").exists()


def test_an_existing_card_is_not_overwritten(my_number_dir):
    before = (my_number_dir / "auth-key.pem").read_bytes()
    result = run("dev", "card", "create", "--kind", "my-number", "--out", str(my_number_dir))
    assert result.exit_code == 2 and "error DEV_CARD_EXISTS" in result.output
    assert (my_number_dir / "auth-key.pem").read_bytes() == before


def test_sign_with_the_authentication_key_by_default(my_number_dir):
    data = b"challenge \x00\xff bytes"
    result = run(
        "dev",
        "card",
        "sign",
        "--card",
        str(my_number_dir),
        "--data-base64",
        base64.b64encode(data).decode(),
    )
    assert result.exit_code == 0, result.output
    signature = result.stdout.strip()
    auth_pem = (my_number_dir / "auth-cert.pem").read_bytes()
    verify(auth_pem, signature, data)
    with pytest.raises(InvalidSignature):
        verify(auth_pem, signature, data + b"!")
    with pytest.raises(InvalidSignature):
        verify((my_number_dir / "sign-cert.pem").read_bytes(), signature, data)


def test_sign_json_with_the_signing_key_from_a_file(my_number_dir, tmp_path):
    data_file = tmp_path / "data.bin"
    data_file.write_bytes(b'{"challenge":"abc"}')
    result = run(
        "dev",
        "card",
        "sign",
        "--card",
        str(my_number_dir),
        "--certificate",
        "signing",
        "--data-file",
        str(data_file),
        "--json",
    )
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert set(answer) == {"certificate", "signature"}
    sign_pem = (my_number_dir / "sign-cert.pem").read_bytes()
    (_, _, sign_der) = pem.unarmor(sign_pem)
    assert base64.b64decode(answer["certificate"]) == sign_der
    verify(sign_pem, answer["signature"], data_file.read_bytes())
    assert describe_certificate(base64.b64decode(answer["certificate"]))["kind"] == "jpki-sign"


def test_representative_card_signs_with_its_key(representative_dir):
    data = b"representative proof"
    result = run(
        "dev",
        "card",
        "sign",
        "--card",
        str(representative_dir),
        "--json",
        "--data-base64",
        base64.b64encode(data).decode(),
    )
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    verify((representative_dir / "cert.pem").read_bytes(), answer["signature"], data)
    missing = run(
        "dev",
        "card",
        "sign",
        "--card",
        str(representative_dir),
        "--certificate",
        "signing",
        "--data-base64",
        "AAAA",
    )
    assert missing.exit_code == 2 and "error DEV_CARD_ROLE_UNKNOWN" in missing.output


@pytest.mark.parametrize("text", ["not base64!", "QUJD=", "QQ", "QR==", "-_8="])
def test_bad_base64_is_request_malformed(my_number_dir, text):
    result = run("dev", "card", "sign", "--card", str(my_number_dir), "--data-base64", text)
    assert result.exit_code == 2
    assert "error REQUEST_MALFORMED" in result.output


def test_sign_needs_exactly_one_data_source(my_number_dir, tmp_path):
    data_file = tmp_path / "d"
    data_file.write_bytes(b"x")
    neither = run("dev", "card", "sign", "--card", str(my_number_dir))
    both = run(
        "dev",
        "card",
        "sign",
        "--card",
        str(my_number_dir),
        "--data-base64",
        "eA==",
        "--data-file",
        str(data_file),
    )
    assert neither.exit_code == 2 and both.exit_code == 2


def test_a_directory_without_a_card_is_refused(cli_env, tmp_path):
    result = run("dev", "card", "sign", "--card", str(tmp_path), "--data-base64", "eA==")
    assert result.exit_code == 2 and "error DEV_CARD_INVALID" in result.output


def test_load_card_round_trip(my_number_dir):
    saved = load_card(my_number_dir)
    assert saved.kind == "my-number"
    assert set(saved.roles) == {"authentication", "signing"}
    assert saved.role() is saved.roles["authentication"]
    pem_bytes = saved.role("signing").certificate.public_bytes(serialization.Encoding.PEM)
    assert pem_bytes == (my_number_dir / "sign-cert.pem").read_bytes()


def test_inspection_classifies_by_the_configured_policies(cli_env, pki, tmp_path, monkeypatch):
    from devpki.cards import issue_my_number_card

    other = "1.2.392.200149.8.5.1.3.99"  # invented: a policy not in the defaults
    card = issue_my_number_card(
        pki,
        name="山田\u3000太郎",
        birth_date="419900115",
        sex="1",
        address="東京都",
        prefecture="東京都",
        city="千代田区",
        auth_policy=other,
    )
    save_card(card, tmp_path / "c")
    assert inspect_json(tmp_path / "c" / "auth-cert.pem")["kind"] == "other"
    monkeypatch.setenv("DAIRI_JPKI_AUTH_POLICIES", f"{JPKI_AUTH_POLICY},{other}")
    assert inspect_json(tmp_path / "c" / "auth-cert.pem")["kind"] == "jpki-auth"
