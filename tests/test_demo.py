"""``dairi demo`` end to end: logins over HTTP with virtual cards, then signed bids."""

from __future__ import annotations

from app.demo import run_demo
from delegation.certificates import parse_mandate_certificate
from devpki.cards import load_card


def test_the_demo_logs_people_in_and_writes_valid_signed_bids(app_settings, app, pki, tmp_path):
    out = tmp_path / "demo"
    lines = list(run_demo(app_settings, out))
    text = "\n".join(lines)
    assert "representative 佐藤 一郎 logged in over HTTP" in text
    assert "法人番号 4011001098993" in text
    assert "roles employee of 4011001098993" in text
    assert load_card(out / "cards" / "employee").kind == "my-number"
    assert load_card(out / "cards" / "representative").kind == "representative"
    for level in ("B-B", "B-T", "B-LT", "B-LTA"):
        assert (out / f"bid-{level}.pdf").is_file()
    assert text.count("  valid") == 4, text
    # The mandates: a representative's grant and its sub-delegation, with the AA certificate.
    acs = sorted((out / "mandates").glob("*.der"))
    assert [p.name[0] for p in acs] == ["0", "1"]
    leaf = parse_mandate_certificate(acs[1].read_bytes())
    [embedded] = leaf.ancestors  # the root, embedded bare (issue 10 item 12)
    assert parse_mandate_certificate(embedded, embedded_depth=0).serial_number == \
        parse_mandate_certificate(acs[0].read_bytes()).serial_number
    assert leaf.terms.grantee.name == "鈴木\u3000花子"
    assert (out / "trust" / "aa.pem").is_file()
    assert len(list((out / "mandates").glob("*.pdf"))) == 1
    assert "who may bid for 令和8年度 第42号 庁舎清掃業務委託 now: 山田\u3000太郎 (chain of 1), " \
        "鈴木\u3000花子 (chain of 2)" in text, text
