"""Settings: ``config/default.toml`` overridden by the environment, validated at start."""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict
from urllib.parse import urlsplit

from hsm import HsmConfig, KeyAlgorithm, KeyRef
from identity.profiles import PolicyOids

PROJECT_DIR = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = PROJECT_DIR / "config" / "default.toml"
# public_base_url when none is configured: the address ``dairi serve`` binds by default.
# ``dairi serve --host H --port P`` uses http://H:P instead (issue 10.10).
DEFAULT_PUBLIC_BASE_URL = "http://127.0.0.1:8080"
# pdf_page_size: media boxes in points (JIS B5 is 182 x 257 mm).
PAGE_SIZES: dict[str, tuple[float, float, float, float]] = {
    "A4": (0, 0, 595.28, 841.89),
    "B5": (0, 0, 515.91, 728.5),
    "letter": (0, 0, 612, 792),
}


class SettingsError(ValueError):
    """The configuration is unusable; raised at start-up, before serving."""


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    database_url: str
    # Bounds on waiting for the database (issue 16 items 6 and 9): connecting
    # (PostgreSQL), one statement (PostgreSQL: server-side, and the client gives up
    # 2 s later), another writer's lock (SQLite); the SQLite WAL is truncated this
    # often; readiness fails below this much free space beside a SQLite file.
    database_connect_timeout_seconds: int
    database_statement_timeout_seconds: int
    sqlite_busy_timeout_seconds: int
    sqlite_checkpoint_seconds: int
    storage_min_free_mb: int
    hsm_module: str
    hsm_token_label: str
    hsm_pin_file: Path
    softhsm2_conf: Path
    dev_mode: bool
    pki_dir: Path
    public_base_url: str
    tsa_url: str
    tsa_timeout_seconds: int  # one time-stamp request to tsa_url, in seconds
    trust_dir: Path
    max_document_bytes: int
    # Documents one signing session signs at most (DESIGN §6 signature activation).
    max_documents_per_session: int
    # Hashes one CSC authorisation (and one signHash call) carries at most: ``multisign``.
    csc_multisign: int
    # The served process (app.serving.gunicorn_conf): a client silent this long while sending a
    # request or taking an answer is dropped, and a request's headers and body must
    # have arrived this long after the server began reading it (slow clients, 9.6).
    http_idle_timeout_seconds: int
    http_receive_timeout_seconds: int
    default_key_algorithm: KeyAlgorithm
    # identity (DESIGN §4)
    allow_test_cards: bool
    revocation_mode: str  # "online" (OCSP/CRL fetched) or "offline" (crl_dir only)
    crl_dir: Path
    revocation_cache_seconds: int
    # A certificate check's revocation fetching ends within this many seconds; a
    # responder that failed is skipped for revocation_breaker_seconds once it has
    # failed revocation_breaker_failures times in a row (issue 16 item 8).
    revocation_budget_seconds: int
    revocation_breaker_failures: int
    revocation_breaker_seconds: int
    keep_personal_data: bool
    representative_titles: tuple[str, ...]
    # certificatePolicies OIDs accepted per certificate (DESIGN §4, issue 10 item 11);
    # jpki_test_policies are accepted in place of the JPKI ones only with allow_test_cards.
    jpki_auth_policies: tuple[str, ...]
    jpki_sign_policies: tuple[str, ...]
    jpki_test_policies: tuple[str, ...]
    registration_policies: tuple[str, ...]
    challenge_seconds: int
    challenge_rate_per_minute: int
    max_open_challenges: int
    refused_auth_rate_per_minute: int  # refused authentication attempts per address/identity
    trusted_proxy_hops: int  # reverse proxies whose X-Forwarded-For is believed (0: none)
    access_token_seconds: int
    console_sign_in_seconds: int  # a console sign-in's code waits this long for approval
    console_session_seconds: int  # a console session's cookie lasts at most this long
    console_open_verification: bool  # the console's verification page needs no sign-in
    # delegation (DESIGN §5): a grant instruction is accepted this long after it was made
    instruction_max_age_seconds: int
    # audit (DESIGN §8, issue 14): checkpoints are due this often (0: only on demand);
    # exports are labelled to be kept this many years (events are never deleted);
    # in production the audit key (CKA_ID hex in the token, version) and its
    # certificate file (PEM, leaf first, then its issuers); empty in development mode.
    audit_checkpoint_interval_seconds: int
    audit_retention_years: int
    audit_key_id: str
    audit_certificate_file: str
    # production (issue 10 item 2): the attribute authority's key in the token, by its
    # label (``dairi aa create-key`` prints it), and its certificate file (PEM, the AA
    # certificate first, then its issuers); both empty in development mode, where the
    # development PKI's AA is used.
    aa_key_label: str
    aa_certificate_file: str
    # The Japanese font dairi draws its PDFs with (empty: found, see
    # app.pdf_text.find_japanese_font) and their page size (A4, B5 or letter).
    pdf_font_file: str
    pdf_page_size: str

    @property
    def hsm(self) -> HsmConfig:
        return HsmConfig(
            module_path=self.hsm_module,
            token_label=self.hsm_token_label,
            pin_file=str(self.hsm_pin_file),
            # A refused PIN is recorded here and not tried again by any process of
            # this installation until the PIN file changes or `dairi hsm unlock`.
            lockout_file=str(self.data_dir / "hsm-login-refused"),
        )

    @property
    def policy_oids(self) -> PolicyOids:
        """The policy settings as the certificate validator takes them."""
        return PolicyOids(
            frozenset(self.jpki_auth_policies),
            frozenset(self.jpki_sign_policies),
            frozenset(self.jpki_test_policies),
            frozenset(self.registration_policies),
        )

    @property
    def aa_key(self) -> KeyRef | None:
        """The configured attribute authority's key (None: the development PKI's)."""
        return aa_key_ref(self.hsm_token_label, self.aa_key_label) if self.aa_key_label else None

    @property
    def pdf_font(self) -> Path:
        """The font file PDFs are drawn with: ``pdf_font_file``, or the one found."""
        from app.pdf_text import find_japanese_font

        return find_japanese_font(self.pdf_font_file)

    @property
    def pdf_page(self) -> tuple[float, float, float, float]:
        """The PDF page's media box, in points."""
        return PAGE_SIZES[self.pdf_page_size]

    @property
    def uses_softhsm(self) -> bool:
        return "softhsm" in Path(self.hsm_module).name

    def replace(self, **changes: object) -> Settings:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


def aa_key_ref(token_label: str, label: str) -> KeyRef:
    """The key named by a dairi key label ``dairi:<CKA_ID hex>:v<version>``."""
    parts = label.strip().split(":")
    try:
        if len(parts) != 3 or parts[0] != "dairi" or not parts[2].startswith("v"):
            raise ValueError(label)
        bytes.fromhex(parts[1])
        return KeyRef(token_label, parts[1].lower(), int(parts[2][1:]))
    except ValueError as exc:
        raise SettingsError(
            "aa_key_label must be a dairi key label "
            "(dairi:<key id in hex>:v<version>, as `dairi aa create-key` "
            "prints it)"
        ) from exc


def _path(value: str, base: Path) -> Path:
    p = Path(value)
    return p if p.is_absolute() else base / p


def _bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"0", "false", "no", "off"}:
        return False
    raise SettingsError(f"not a boolean: {value!r}")


def _int(raw: dict[str, object], name: str, low: int, high: int | None = None) -> int:
    try:
        value = int(str(raw[name]))
    except ValueError as exc:
        raise SettingsError(f"{name} is not an integer") from exc
    if value < low or (high is not None and value > high):
        raise SettingsError(f"{name} must be between {low} and {high or 'any'}")
    return value


def _strings(value: object) -> tuple[str, ...]:
    """A TOML array, or a comma-separated environment value."""
    items = value if isinstance(value, list) else str(value).split(",")
    return tuple(s for s in (str(i).strip() for i in items) if s)


def configured_public_base_url(env: dict[str, str] | None = None) -> str:
    """``public_base_url`` as configured (``DAIRI_PUBLIC_BASE_URL``, else the configuration
    file), or "" when neither names one and the served address should be used.

    Raises nothing: an unreadable configuration is reported by ``load_settings``.
    """
    env = dict(os.environ if env is None else env)
    if "DAIRI_PUBLIC_BASE_URL" in env:
        return env["DAIRI_PUBLIC_BASE_URL"].strip()
    path = Path(env.get("DAIRI_CONFIG", DEFAULT_CONFIG))
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return ""
    return str(raw.get("public_base_url", "")).strip()


def load_settings(
    config_file: Path | None = None,
    env: dict[str, str] | None = None,
    base_dir: Path = PROJECT_DIR,
    **overrides: object,
) -> Settings:
    """Read the TOML file, apply ``DAIRI_*`` variables and ``overrides``, validate."""
    env = dict(os.environ if env is None else env)
    path = config_file or Path(env.get("DAIRI_CONFIG", DEFAULT_CONFIG))
    try:
        raw: dict[str, object] = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise SettingsError(f"cannot read configuration {path}: {exc}") from exc
    names = {f.name for f in dataclasses.fields(Settings)}
    unknown = set(raw) - names
    if unknown:
        raise SettingsError(f"unknown configuration keys: {', '.join(sorted(unknown))}")
    for name in names:
        if f"DAIRI_{name.upper()}" in env:
            raw[name] = env[f"DAIRI_{name.upper()}"]
    if "DATABASE_URL" in env and "DAIRI_DATABASE_URL" not in env:
        raw["database_url"] = env["DATABASE_URL"]
    raw.update(overrides)
    missing = names - set(raw)
    if missing:
        raise SettingsError(f"missing configuration keys: {', '.join(sorted(missing))}")

    data_dir = _path(str(raw["data_dir"]), base_dir)
    database_url = str(raw["database_url"] or f"sqlite:///{data_dir / 'dairi.db'}")
    try:
        max_bytes = int(str(raw["max_document_bytes"]))
        algorithm = KeyAlgorithm(str(raw["default_key_algorithm"]))
    except ValueError as exc:
        raise SettingsError(str(exc)) from exc
    if max_bytes <= 0:
        raise SettingsError("max_document_bytes must be positive")
    base_url = str(raw["public_base_url"]).strip().rstrip("/") or DEFAULT_PUBLIC_BASE_URL
    if urlsplit(base_url).scheme not in {"http", "https"}:
        raise SettingsError("public_base_url must be an http(s) URL")
    if not database_url.startswith(("sqlite", "postgresql")):
        raise SettingsError("database_url must be a SQLite or PostgreSQL URL")
    revocation_mode = str(raw["revocation_mode"])
    if revocation_mode not in {"online", "offline"}:
        raise SettingsError("revocation_mode must be 'online' or 'offline'")
    titles = _strings(raw["representative_titles"])
    if not titles:
        raise SettingsError("representative_titles must name at least one title")
    policy_names = (
        "jpki_auth_policies",
        "jpki_sign_policies",
        "jpki_test_policies",
        "registration_policies",
    )
    policies: dict[str, Any] = {name: _strings(raw[name]) for name in policy_names}
    try:
        PolicyOids(*(frozenset(policies[name]) for name in policy_names))
    except ValueError as exc:
        raise SettingsError(str(exc)) from exc
    return Settings(
        data_dir=data_dir,
        database_url=database_url,
        database_connect_timeout_seconds=_int(raw, "database_connect_timeout_seconds", 1, 300),
        database_statement_timeout_seconds=_int(raw, "database_statement_timeout_seconds", 1, 3600),
        sqlite_busy_timeout_seconds=_int(raw, "sqlite_busy_timeout_seconds", 1, 300),
        sqlite_checkpoint_seconds=_int(raw, "sqlite_checkpoint_seconds", 1, 86400),
        storage_min_free_mb=_int(raw, "storage_min_free_mb", 0),
        hsm_module=str(raw["hsm_module"]),
        hsm_token_label=str(raw["hsm_token_label"]),
        hsm_pin_file=_path(str(raw["hsm_pin_file"]), base_dir),
        softhsm2_conf=_path(str(raw["softhsm2_conf"]), base_dir),
        dev_mode=_bool(raw["dev_mode"]),
        pki_dir=_path(str(raw["pki_dir"]), base_dir),
        public_base_url=base_url,
        tsa_url=str(raw["tsa_url"]),
        tsa_timeout_seconds=_int(raw, "tsa_timeout_seconds", 1, 300),
        trust_dir=_path(str(raw["trust_dir"]), base_dir),
        max_document_bytes=max_bytes,
        max_documents_per_session=_int(raw, "max_documents_per_session", 1, 1000),
        csc_multisign=_int(raw, "csc_multisign", 1, 1000),
        http_idle_timeout_seconds=_int(raw, "http_idle_timeout_seconds", 1, 3600),
        http_receive_timeout_seconds=_int(raw, "http_receive_timeout_seconds", 1, 3600),
        default_key_algorithm=algorithm,
        allow_test_cards=_bool(raw["allow_test_cards"]),
        revocation_mode=revocation_mode,
        crl_dir=_path(str(raw["crl_dir"]), base_dir),
        revocation_cache_seconds=_int(raw, "revocation_cache_seconds", 0, 3600),
        revocation_budget_seconds=_int(raw, "revocation_budget_seconds", 1, 60),
        revocation_breaker_failures=_int(raw, "revocation_breaker_failures", 1, 100),
        revocation_breaker_seconds=_int(raw, "revocation_breaker_seconds", 1, 3600),
        keep_personal_data=_bool(raw["keep_personal_data"]),
        representative_titles=titles,
        **policies,
        # DESIGN §4: a challenge lives at most 120 s.
        challenge_seconds=_int(raw, "challenge_seconds", 1, 120),
        challenge_rate_per_minute=_int(raw, "challenge_rate_per_minute", 1),
        max_open_challenges=_int(raw, "max_open_challenges", 1),
        refused_auth_rate_per_minute=_int(raw, "refused_auth_rate_per_minute", 1),
        trusted_proxy_hops=_int(raw, "trusted_proxy_hops", 0, 10),
        access_token_seconds=_int(raw, "access_token_seconds", 60, 86400),
        console_sign_in_seconds=_int(raw, "console_sign_in_seconds", 30, 900),
        console_session_seconds=_int(raw, "console_session_seconds", 60, 43200),
        console_open_verification=_bool(raw["console_open_verification"]),
        instruction_max_age_seconds=_int(raw, "instruction_max_age_seconds", 10, 86400),
        audit_checkpoint_interval_seconds=_int(raw, "audit_checkpoint_interval_seconds", 0),
        audit_retention_years=_int(raw, "audit_retention_years", 1, 100),
        audit_key_id=str(raw["audit_key_id"]).strip(),
        audit_certificate_file=str(raw["audit_certificate_file"]).strip(),
        **_production_aa(raw, base_dir),
        pdf_font_file=str(raw["pdf_font_file"]).strip(),
        pdf_page_size=_page_size(raw["pdf_page_size"]),
    )


class _ProductionAa(TypedDict):
    aa_key_label: str
    aa_certificate_file: str


def _production_aa(raw: dict[str, object], base_dir: Path) -> _ProductionAa:
    """``aa_key_label`` and ``aa_certificate_file``: both or neither (a relative
    certificate path is taken from the project directory)."""
    label = str(raw["aa_key_label"]).strip()
    certificate = str(raw["aa_certificate_file"]).strip()
    if bool(label) != bool(certificate):
        raise SettingsError("aa_key_label and aa_certificate_file are set together")
    if label:
        aa_key_ref("", label)
        certificate = str(_path(certificate, base_dir))
    return {"aa_key_label": label, "aa_certificate_file": certificate}


def _page_size(value: object) -> str:
    name = str(value).strip()
    if name not in PAGE_SIZES:
        raise SettingsError(f"pdf_page_size must be one of {', '.join(PAGE_SIZES)}")
    return name
