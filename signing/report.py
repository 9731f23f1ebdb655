"""A verification report as text for the officer who files it: Japanese (検証結果) or
English. The same report as :meth:`VerificationReport.to_json`, in words."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from signing.verification import (
    HopReport,
    Indication,
    MandateReport,
    SignatureReport,
    VerificationReport,
)

JST = timezone(timedelta(hours=9), "JST")

_INDICATION = {
    "ja": {
        Indication.TOTAL_PASSED: "有効",
        Indication.TOTAL_FAILED: "無効",
        Indication.INDETERMINATE: "判定不能",
    },
    "en": {
        Indication.TOTAL_PASSED: "valid",
        Indication.TOTAL_FAILED: "invalid",
        Indication.INDETERMINATE: "indeterminate",
    },
}

_LABELS = {
    "ja": {
        "title": "検証結果",
        "document": "文書 (SHA-256)",
        "verified_at": "検証日時",
        "purpose": "確認した委任事項",
        "signature": "署名",
        "result": "判定",
        "detail": "詳細",
        "level": "署名レベル",
        "signer": "署名者",
        "corporation": "法人",
        "corporate_number": "法人番号",
        "signing_time": "署名日時",
        "claimed_time": "署名者の申告日時",
        "timestamp": "タイムスタンプ",
        "coverage": "署名範囲",
        "changes": "署名後の変更",
        "mandate": "委任",
        "principal": "委任者",
        "agent": "受任者",
        "actions": "委任事項",
        "entities": "発注機関",
        "cases": "案件",
        "amount": "金額上限",
        "validity": "有効期間",
        "revoked": "失効",
        "sub_delegation": "復代理",
        "root_grant": "代表者による委任",
        "representative": "代表者",
        "covers": "委任事項の範囲内",
        "reasons": "理由コード",
        "revocation_data": "失効情報の出所",
        "none": "なし",
        "any": "制限なし",
        "yes": "はい",
        "no": "いいえ",
        "no_mandate": "委任状なし",
        "signature_ts": "署名タイムスタンプ",
        "document_ts": "文書タイムスタンプ",
    },
    "en": {
        "title": "Verification result",
        "document": "Document (SHA-256)",
        "verified_at": "Verified at",
        "purpose": "Purpose checked",
        "signature": "Signature",
        "result": "Result",
        "detail": "Detail",
        "level": "Level",
        "signer": "Signer",
        "corporation": "Corporation",
        "corporate_number": "Corporate number",
        "signing_time": "Signing time",
        "claimed_time": "Claimed signing time",
        "timestamp": "Timestamp",
        "coverage": "Coverage",
        "changes": "Changes after signing",
        "mandate": "Mandate",
        "principal": "Principal",
        "agent": "Agent",
        "actions": "Actions",
        "entities": "Procuring entities",
        "cases": "Cases",
        "amount": "Amount limit",
        "validity": "Validity",
        "revoked": "Revoked",
        "sub_delegation": "sub-delegation",
        "root_grant": "Representative's grant",
        "representative": "Representative",
        "covers": "Covers the purpose",
        "reasons": "Reason codes",
        "revocation_data": "Revocation data from",
        "none": "none",
        "any": "any",
        "yes": "yes",
        "no": "no",
        "no_mandate": "no mandate",
        "signature_ts": "signature timestamp",
        "document_ts": "document timestamp",
    },
}

LANGUAGES = tuple(_LABELS)


def _time(moment: datetime | None, lang: str) -> str:
    if moment is None:
        return "-"
    local = moment.astimezone(JST)
    if lang == "ja":
        return local.strftime("%Y年%m月%d日 %H:%M:%S JST")
    return local.strftime("%Y-%m-%d %H:%M:%S JST")


def _names(values: tuple[str, ...] | None, label: dict[str, str]) -> str:
    return label["any"] if values is None else "、".join(values) or label["none"]


def _hop_lines(hop: HopReport, label: dict[str, str], lang: str) -> list[str]:
    head = f"  [{hop.depth}] {hop.grantor} → {hop.grantee}"
    if hop.depth > 0:
        head += f" ({label['sub_delegation']})"
    lines = [
        head,
        f"      {label['principal']}: {hop.principal_name} ({hop.principal_corporate_number})",
        f"      {label['actions']}: {'、'.join(hop.actions)}",
        f"      {label['entities']}: {_names(hop.procuring_entities, label)}",
        f"      {label['cases']}: {_names(hop.cases, label)}",
        f"      {label['amount']}: "
        + (label["any"] if hop.amount_limit_jpy is None else f"{hop.amount_limit_jpy:,} 円"),
        f"      {label['validity']}: {_time(hop.not_before, lang)} – {_time(hop.not_after, lang)}",
    ]
    if hop.revoked_at is not None:
        lines.append(f"      {label['revoked']}: {_time(hop.revoked_at, lang)}")
    if hop.reasons:
        lines.append(f"      {label['reasons']}: {', '.join(hop.reasons)}")
    return lines


def _mandate_lines(mandate: MandateReport | None, label: dict[str, str], lang: str) -> list[str]:
    if mandate is None or not mandate.present:
        return [f"{label['mandate']}: {label['no_mandate']}"]
    lines = [f"{label['mandate']}:"]
    for hop in mandate.hops:
        lines += _hop_lines(hop, label, lang)
    root = mandate.root_grant
    if root is not None:
        lines.append(
            f"  {label['root_grant']}: {root.representative or '-'} {root.title or ''}"
            f" ({root.corporation or '-'}, {root.corporate_number or '-'})"
            + (f" {', '.join(root.reasons)}" if root.reasons else f" {label['yes']}")
        )
    if mandate.covers_purpose is not None:
        lines.append(
            f"  {label['covers']}: {label['yes'] if mandate.covers_purpose else label['no']}"
        )
    return lines


def _signature_lines(sig: SignatureReport, label: dict[str, str], lang: str) -> list[str]:
    words = _INDICATION[lang]
    signer = sig.signer
    lines = [
        f"{label['signature']} {sig.field_name}",
        f"{label['result']}: {words[sig.indication]}"
        + (f" ({sig.indication.name}/{sig.sub_indication})" if sig.sub_indication else ""),
    ]
    if sig.message:
        lines.append(f"{label['detail']}: {sig.message}")
    lines += [
        f"{label['level']}: {sig.level.value if sig.level else '-'}",
        f"{label['signer']}: {signer.name or signer.subject}",
        f"{label['corporation']}: {signer.organization or '-'}",
        f"{label['corporate_number']}: {signer.corporate_number or '-'}",
        f"{label['signing_time']}: {_time(sig.best_signature_time, lang)}",
        f"{label['claimed_time']}: {_time(sig.claimed_signing_time, lang)}",
    ]
    for ts in sig.timestamps:
        kind = label["signature_ts"] if ts.kind == "signature" else label["document_ts"]
        mark = "" if ts.valid else f" ({words[Indication.TOTAL_FAILED]})"
        lines.append(f"{label['timestamp']}: {_time(ts.time, lang)} {kind} {ts.tsa}{mark}")
    cov = sig.coverage
    lines.append(f"{label['coverage']}: {cov.coverage}")
    lines.append(
        f"{label['changes']}: {cov.revisions_after} ({cov.modification_level or label['none']})"
    )
    lines += _mandate_lines(sig.mandate, label, lang)
    lines.append(f"{label['reasons']}: {', '.join(sig.reasons) or label['none']}")
    lines.append(f"{label['revocation_data']}: {', '.join(sig.revocation_data) or label['none']}")
    return lines


def render_text(report: VerificationReport, lang: str = "ja") -> str:
    """The report as lines of text in ``lang`` (``ja`` or ``en``); ValueError otherwise."""
    if lang not in _LABELS:
        raise ValueError(f"language {lang!r} is not one of {', '.join(LANGUAGES)}")
    label = _LABELS[lang]
    lines = [
        f"{label['title']}: {_INDICATION[lang][report.indication]}",
        f"{label['document']}: {report.document_sha256}",
        f"{label['verified_at']}: {_time(report.verified_at, lang)}",
    ]
    if report.purpose is not None:
        asked = ", ".join(f"{k}={v}" for k, v in report.purpose.items() if v is not None)
        lines.append(f"{label['purpose']}: {asked}")
    for sig in report.signatures:
        lines.append("")
        lines += _signature_lines(sig, label, lang)
    return "\n".join(lines) + "\n"
