"""``dairi demo`` end to end: logins over HTTP with virtual cards, then signed bids."""

from __future__ import annotations

from app.demo import run_demo
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
