"""A dairi installation of a test's own: a data directory laid out as ``var/`` with its
own SoftHSM token directory, driven through the real ``dairi`` command line.

The session's test token is never touched: a test that breaks a token breaks this one.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from app.settings import Settings

DAIRI = str(Path(sys.executable).with_name("dairi"))
PROJECT_DIR = Path(__file__).resolve().parent.parent
SOFTHSM_MODULE = "/usr/lib/softhsm/libsofthsm2.so"


@dataclass(frozen=True)
class Install:
    root: Path
    token_label: str = "dairi-own-test"

    @property
    def hsm(self) -> Path:
        return self.root / "hsm"

    @property
    def conf(self) -> Path:
        return self.hsm / "softhsm2.conf"

    @property
    def tokens(self) -> Path:
        return self.hsm / "tokens"

    @property
    def pin_file(self) -> Path:
        return self.hsm / "user-pin"

    @property
    def so_pin_file(self) -> Path:
        return self.hsm / "user-pin.so"

    @property
    def database_url(self) -> str:
        return f"sqlite:///{self.root / 'dairi.db'}"

    def env(self) -> dict[str, str]:
        """The environment of a ``dairi`` command on this installation; nothing of the
        test session's token or settings leaks in."""
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("DAIRI_") and k != "SOFTHSM2_CONF"
        }
        env.update(
            {
                "DAIRI_DATA_DIR": str(self.root),
                "DAIRI_DATABASE_URL": self.database_url,
                "DAIRI_HSM_TOKEN_LABEL": self.token_label,
                "DAIRI_HSM_PIN_FILE": str(self.pin_file),
                "DAIRI_SOFTHSM2_CONF": str(self.conf),
                "DAIRI_PKI_DIR": str(self.root / "pki"),
                "DAIRI_TRUST_DIR": str(self.root / "pki" / "trust"),
            }
        )
        return env

    def run(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [DAIRI, *args],
            env=self.env(),
            cwd=PROJECT_DIR,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def init(self) -> Install:
        """``dairi init``: token, PIN file, database and development PKI."""
        done = self.run("init")
        assert done.returncode == 0, done.stderr
        return self

    def token_files(self) -> list[Path]:
        return sorted(self.tokens.rglob("*")) if self.tokens.exists() else []

    def settings(self, base: Settings) -> Settings:
        """Settings naming this installation (for LiveServer and direct database reads)."""
        return base.replace(
            data_dir=self.root,
            database_url=self.database_url,
            hsm_module=SOFTHSM_MODULE,
            hsm_token_label=self.token_label,
            hsm_pin_file=self.pin_file,
            softhsm2_conf=self.conf,
            pki_dir=self.root / "pki",
            trust_dir=self.root / "pki" / "trust",
        )

    def server_env(self) -> dict[str, str]:
        """Extra environment for LiveServer: SoftHSM reads this installation's tokens."""
        return {"SOFTHSM2_CONF": str(self.conf)}
