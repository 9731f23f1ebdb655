"""The console's words, Japanese first and English on request (``?lang=en``).

One table rather than gettext catalogues: the console is small, both languages are
kept side by side, and a missing translation is a KeyError a test finds at once
(tests/test_console.py renders every page in both)."""

from __future__ import annotations

LANGUAGES = ("ja", "en")

TEXT: dict[str, tuple[str, str]] = {
    # key: (日本語, English)
    "service": ("dairi 電子委任状コンソール", "dairi power-of-attorney console"),
    "skip": ("本文へ移動", "Skip to content"),
    "nav": ("メインメニュー", "Main menu"),
    "home": ("ホーム", "Home"),
    "mandates": ("委任状", "Mandates"),
    "language": ("English", "日本語"),
    "sign_in": ("サインイン", "Sign in"),
    "sign_out": ("サインアウト", "Sign out"),
    "sign_in_title": ("マイナンバーカードでサインイン", "Sign in with your My Number Card"),
    "sign_in_intro": (
        "ブラウザはカードを読めません。別の端末でカードを使って、このブラウザに表示される"
        "コードを承認してください。",
        "A browser cannot read the card. Approve the code this browser will show, with "
        "the card, on another device.",
    ),
    "sign_in_start": ("コードを表示する", "Show a code"),
    "wait_title": ("コードを承認してください", "Approve this code"),
    "wait_intro": (
        "カードを接続した端末で次のコマンドを実行し、カードの暗証番号を入力してください。",
        "On the device with the card, run this command and enter the card's PIN.",
    ),
    "wait_code": ("サインインコード", "Sign-in code"),
    "wait_qr": ("サインインコードの QR コード", "QR code of the sign-in code"),
    "wait_expires": ("有効期限", "Valid until"),
    "wait_refresh": (
        "承認されるとこのページは自動的に進みます。",
        "This page moves on by itself once the code is approved.",
    ),
    "wait_check": ("承認を確認する", "Check for approval"),
    "expired_title": ("コードの有効期限が切れました", "The code has expired"),
    "expired_intro": ("もう一度サインインしてください。", "Please sign in again."),
    "signed_in_as": ("サインイン中", "Signed in as"),
    "roles": ("役割", "Roles"),
    "role_employee": ("従業員", "employee"),
    "role_representative": ("代表者", "representative"),
    "role_auditor": ("監査担当者", "auditor"),
    "role_administrator": ("管理者", "administrator"),
    "corporations": ("法人", "Corporations"),
    "session_until": ("セッションの有効期限", "Session valid until"),
    "none": ("なし", "none"),
    "mandates_title": ("委任状の一覧", "Mandates"),
    "filter": ("絞り込み", "Filter"),
    "principal": ("委任者（法人番号）", "Principal (corporate number)"),
    "status": ("状態", "Status"),
    "any": ("すべて", "any"),
    "active": ("有効", "active"),
    "revoked": ("失効", "revoked"),
    "expired": ("期限切れ", "expired"),
    "not_yet_valid": ("開始前", "not yet valid"),
    "apply": ("表示", "Show"),
    "grantee": ("受任者", "Agent"),
    "grantor": ("委任者側の署名者", "Granted by"),
    "scope": ("委任事項", "Scope"),
    "validity": ("有効期間", "Validity"),
    "depth": ("復代理の深さ", "Depth"),
    "no_mandates": ("該当する委任状はありません。", "No mandate matches."),
    "page_of": ("{total} 件中 {first}–{last} 件", "{first}–{last} of {total}"),
    "previous": ("前へ", "Previous"),
    "next": ("次へ", "Next"),
    "mandate_title": ("委任状", "Mandate"),
    "principal_name": ("委任者", "Principal"),
    "chain": ("委任の連鎖", "Delegation chain"),
    "downloads": ("ダウンロード", "Downloads"),
    "download_pdf": ("電子委任状（PDF、署名付き）", "電子委任状 (signed PDF)"),
    "download_ac": ("属性証明書（DER）", "Attribute certificate (DER)"),
    "history": ("履歴", "History"),
    "when": ("日時", "When"),
    "event": ("出来事", "Event"),
    "actor": ("実行者", "By"),
    "reissued_as": ("再発行:", "Re-issued as"),
    "sub_delegated_to": ("復代理:", "Sub-delegated to"),
    "signatures": ("この委任状による署名", "Signatures under this mandate"),
    "format": ("形式", "Format"),
    "document_sha256": ("署名済み文書の SHA-256", "Signed document SHA-256"),
    "no_signatures": ("まだ署名はありません。", "No signature yet."),
    "revoke": ("この委任状を失効させる", "Revoke this mandate"),
    "revoke_title": ("委任状の失効", "Revoke a mandate"),
    "revoke_warning": (
        "失効は直ちに効力を生じ、取り消せません。この委任状から再委任されたものも失効します。",
        "Revocation takes effect at once and cannot be undone; every mandate granted "
        "under this one is revoked with it.",
    ),
    "revocation_reason": ("理由", "Reason"),
    "reason_privilege_withdrawn": ("権限の撤回", "privilege withdrawn"),
    "reason_affiliation_changed": ("所属の変更", "affiliation changed"),
    "reason_superseded": ("差し替え", "superseded"),
    "reason_cessation_of_operation": ("業務の終了", "cessation of operation"),
    "reason_unspecified": ("指定なし", "unspecified"),
    "revoke_confirm": ("失効させる", "Revoke"),
    "cancel": ("取り消し", "Cancel"),
    "revoked_done": ("委任状を失効させました。", "The mandate is revoked."),
    "verify": ("検証", "Verify"),
    "verify_title": ("署名済み文書の検証", "Verify a signed document"),
    "verify_intro": (
        "署名済みの入札書（PDF）または電子申請書（XML）を選んでください。文書が改ざんされて"
        "いないか、誰がいつ署名したか、その時点で法人を代理する権限があったかを検証します。",
        "Choose a signed bid (PDF) or e-application (XML): whether it is intact, who "
        "signed it and when, and whether they held the authority to act for the "
        "corporation at that time.",
    ),
    "verify_document": ("署名済み文書", "Signed document"),
    "verify_purpose": ("確認する目的（任意）", "Purpose to check (optional)"),
    "verify_action": ("委任事項（例: bid）", "Action (e.g. bid)"),
    "verify_entity": ("調達機関", "Procuring entity"),
    "verify_case": ("案件", "Case"),
    "verify_amount": ("金額（円）", "Amount (yen)"),
    "verify_show": ("検証する", "Verify"),
    "verify_pdf": ("検証結果を PDF で保存", "Save the report as PDF"),
    "verify_json": ("検証結果を JSON で保存", "Save the report as JSON"),
    "verify_result": ("検証結果", "Result"),
    "relation": ("関係", "Relation"),
    "history_auditors": (
        "履歴は監査担当者・代表者・管理者が閲覧できます。",
        "Auditors, representatives and administrators see the history.",
    ),
    "authority": ("権限照会", "Authority"),
    "authority_title": ("代理権限の照会", "Who could act"),
    "authority_intro": (
        "この法人のために、この目的で、この日時に行為できた人と、その委任の連鎖を示します。",
        "Who could act for this corporation, for this purpose, at this time, and through "
        "which chain.",
    ),
    "authority_at": ("日時（省略時は現在）", "At (default: now)"),
    "authority_answer": ("行為できる人", "Who could act"),
    "authority_none": ("該当する人はいません。", "Nobody could."),
    "audit": ("監査", "Audit"),
    "audit_title": ("監査ログ", "Audit trail"),
    "audit_chain": ("ハッシュチェーンの状態", "The hash chain"),
    "audit_check": ("今すぐ検証する", "Check it now"),
    "audit_intact": ("改ざんは見つかりませんでした", "Intact"),
    "audit_events_checked": ("件を検証", "events checked"),
    "audit_broken": ("チェーンが壊れています", "The chain is broken at"),
    "audit_tag": ("種別（例: mandate:*）", "Tag (e.g. mandate:*)"),
    "audit_from": ("開始日時", "From"),
    "audit_to": ("終了日時", "To"),
    "audit_subject": ("対象", "Subject"),
    "audit_export": (
        "この条件のイベントを JSON Lines でダウンロード",
        "Download these events (JSON Lines)",
    ),
    "audit_none": ("イベントはありません。", "No event."),
    "audit_checkpoints": ("署名付きチェックポイント（最新5件）", "Signed checkpoints (latest 5)"),
    "audit_head": ("先頭のハッシュ", "Head hash"),
    "audit_no_checkpoints": ("チェックポイントはまだありません。", "No checkpoint yet."),
    "people": ("従業員", "People"),
    "people_title": ("従業員と招待", "People and invitations"),
    "joint_representation": ("共同代表", "Joint representation"),
    "joint_one": ("代表者1名で委任できます", "any one representative grants"),
    "joint_n": ("代表者{n}名の署名が必要です", "{n} representatives must sign a grant"),
    "employees": ("登録済みの従業員", "Enrolled employees"),
    "name": ("氏名", "Name"),
    "enrolled_at": ("登録日", "Enrolled"),
    "person_active": ("有効", "active"),
    "person_reenroll_required": ("再登録が必要", "must re-enrol"),
    "no_employees": ("登録済みの従業員はいません。", "No employee is enrolled yet."),
    "invite_title": ("従業員を招待する", "Invite an employee"),
    "invite_name": (
        "マイナンバーカード記載の氏名（姓と名の間は空白）",
        "Name as on the My Number Card (family name, a space, given name)",
    ),
    "invite": ("招待コードを発行", "Issue an invitation code"),
    "invitation_title": ("招待コード", "Invitation code"),
    "invitation_intro": (
        "このコードを本人にだけ伝えてください。本人がマイナンバーカードで登録すると使用済みになります。"
        "コードはこの画面でしか表示されません。",
        "Give this code to the employee only; it is spent when they enrol with their "
        "card. It is shown on this page only.",
    ),
    "invitation_code": ("招待コード", "Invitation code"),
    "error_title": ("エラー", "Error"),
    "error_back": ("ホームへ戻る", "Back to the home page"),
}


def text_for(language: str) -> dict[str, str]:
    index = LANGUAGES.index(language) if language in LANGUAGES else 0
    return {key: pair[index] for key, pair in TEXT.items()}
