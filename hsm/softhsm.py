"""SoftHSM2 set-up for the embedded default and the tests: a project-local token."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from pathlib import Path

from hsm.errors import HsmUnavailable

SOFTHSM_UTIL = "softhsm2-util"


def write_softhsm_conf(conf_path: Path, token_dir: Path) -> None:
    """Write a SoftHSM configuration whose tokens live in ``token_dir``."""
    token_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    conf_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    conf_path.write_text(
        f"directories.tokendir = {token_dir}\n"
        "objectstore.backend = file\n"
        "log.level = ERROR\n"
        "slots.removable = false\n"
        # A forked worker re-initialises PKCS#11; let SoftHSM drop the parent's state.
        "library.reset_on_fork = true\n",
        encoding="utf-8",
    )


def _write_secret(path: Path, value: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(value + "\n")


def ensure_softhsm_token(conf_path: Path, label: str, pin_file: Path) -> bool:
    """Create the SoftHSM token ``label`` under ``conf_path``'s directory unless it exists.

    A fresh random user PIN (and SO PIN) is written to ``pin_file`` (and beside
    it), mode 0600. Returns True when a token was created. Idempotent.
    """
    if shutil.which(SOFTHSM_UTIL) is None:
        raise HsmUnavailable("softhsm2-util is not installed")
    if not conf_path.exists():
        write_softhsm_conf(conf_path, conf_path.parent / "tokens")
    env = dict(os.environ, SOFTHSM2_CONF=str(conf_path))
    shown = subprocess.run(  # noqa: S603 - fixed argv, no shell
        [SOFTHSM_UTIL, "--show-slots"], env=env, capture_output=True, text=True, check=False
    )
    labels = {line.split(":", 1)[1].strip() for line in shown.stdout.splitlines()
              if line.strip().startswith("Label:")}
    if label in labels:
        if not pin_file.exists():
            raise HsmUnavailable(f"token {label!r} exists but its PIN file {pin_file} is missing")
        return False
    user_pin = secrets.token_hex(8)
    so_pin = secrets.token_hex(8)
    done = subprocess.run(  # noqa: S603
        [SOFTHSM_UTIL, "--init-token", "--free", "--label", label,
         "--so-pin", so_pin, "--pin", user_pin],
        env=env, capture_output=True, text=True, check=False,
    )
    if done.returncode != 0:
        raise HsmUnavailable(f"softhsm2-util could not create token {label!r}")
    _write_secret(pin_file, user_pin)
    _write_secret(pin_file.with_name(pin_file.name + ".so"), so_pin)
    return True
