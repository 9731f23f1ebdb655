"""SoftHSM2 set-up for the embedded default and the tests: a project-local token.

A token is created only by an explicit first-run step (:func:`ensure_softhsm_token`,
run by ``dairi init``) and only where no earlier token left a trace: an empty token
directory beside an existing PIN file is a volume not mounted yet, not a fresh start
(issue 16.1). Everything else only checks (:func:`require_softhsm_token`).
"""

from __future__ import annotations

import os
import pty
import secrets
import select
import shutil
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path

from hsm.errors import HsmUnavailable, TokenMissing

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


def _token_dir(conf_path: Path) -> Path | None:
    """The ``directories.tokendir`` of a SoftHSM configuration file."""
    for line in conf_path.read_text(encoding="utf-8").splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "directories.tokendir" and value.strip():
            return Path(value.strip())
    return None


def so_pin_file(pin_file: Path) -> Path:
    """Where versions before issue 9.15 kept the SO PIN (beside the user PIN)."""
    return pin_file.with_name(pin_file.name + ".so")


def token_labels(conf_path: Path) -> set[str]:
    """Labels of the initialised tokens SoftHSM sees under ``conf_path`` (none when
    its token directory is missing or unreadable)."""
    if shutil.which(SOFTHSM_UTIL) is None:
        raise HsmUnavailable("softhsm2-util is not installed")
    env = dict(os.environ, SOFTHSM2_CONF=str(conf_path))
    shown = subprocess.run(  # noqa: S603 - fixed argv, no shell
        [SOFTHSM_UTIL, "--show-slots"], env=env, capture_output=True, text=True, check=False
    )
    return {
        line.split(":", 1)[1].strip()
        for line in shown.stdout.splitlines()
        if line.strip().startswith("Label:")
    } - {""}


def traces_of_a_token(conf_path: Path, pin_file: Path, also: Iterable[Path] = ()) -> list[Path]:
    """What an earlier token left behind: its PIN file, an SO PIN file, anything in the
    token directory, and each of ``also`` that exists (e.g. a PKI whose keys were in it)."""
    found = [p for p in (pin_file, so_pin_file(pin_file), *also) if p.exists()]
    token_dir = _token_dir(conf_path) if conf_path.is_file() else None
    if token_dir is not None and token_dir.is_dir() and any(token_dir.iterdir()):
        found.append(token_dir)
    return found


def require_softhsm_token(
    conf_path: Path, label: str, pin_file: Path, also: Iterable[Path] = ()
) -> None:
    """Check that the token ``label`` is present; never creates one.

    Raises :class:`TokenMissing` (``HSM_TOKEN_MISSING``): on a fresh data directory
    the message says to run ``dairi init``; where an earlier token left traces it
    says to mount or restore that token.
    """
    if conf_path.is_file() and label in token_labels(conf_path):
        return
    traces = traces_of_a_token(conf_path, pin_file, also)
    if traces:
        raise _missing(conf_path, label, traces)
    raise TokenMissing(
        f"there is no SoftHSM token {label!r} yet: run `dairi init` once to"
        " create it (with its PIN file) on this fresh data directory"
    )


def ensure_softhsm_token(
    conf_path: Path, label: str, pin_file: Path, also: Iterable[Path] = ()
) -> bool:
    """The explicit first-run step: create the SoftHSM token ``label`` unless it exists.

    Creates it only when nothing of an earlier token is left (see
    :func:`traces_of_a_token`); then a random user PIN is written to ``pin_file``
    (mode 0600, never over an existing file) and the SO PIN, needed only to
    initialise the token and set the user PIN, is not kept anywhere. Returns True
    when a token was created, False when it was there already. Raises
    :class:`TokenMissing` when the token is absent but traces are not, and
    :class:`HsmUnavailable` when SoftHSM cannot create it.
    """
    if conf_path.is_file() and label in token_labels(conf_path):
        return False
    traces = traces_of_a_token(conf_path, pin_file, also)
    if traces:
        raise _missing(conf_path, label, traces)
    if not conf_path.exists():
        write_softhsm_conf(conf_path, conf_path.parent / "tokens")
    token_dir = _token_dir(conf_path)
    if token_dir is not None:
        token_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    user_pin = secrets.token_hex(8)
    # The PIN is in a file of its own before the token exists, and becomes the PIN
    # file only once the token accepted it (a link never replaces an existing file).
    pending = pin_file.with_name(pin_file.name + ".new")
    _write_secret(pending, user_pin)
    env = dict(os.environ, SOFTHSM2_CONF=str(conf_path))
    try:
        if _init_token_at_a_terminal(label, secrets.token_hex(16), user_pin, env) != 0:
            raise HsmUnavailable(f"softhsm2-util could not create token {label!r}")
        os.link(pending, pin_file)
    finally:
        pending.unlink(missing_ok=True)
    return True


# How long softhsm2-util may take to create a token before it is given up on.
INIT_TOKEN_SECONDS = 30.0


def _init_token_at_a_terminal(label: str, so_pin: str, user_pin: str, env: dict[str, str]) -> int:
    """Run ``softhsm2-util --init-token`` and type the PINs at its prompts.

    softhsm2-util takes PINs from its arguments or from a terminal only (it stops at
    the first prompt when its input is a pipe). Arguments are readable by every user
    of the machine (``ps``, /proc/PID/cmdline), so it gets a pseudo-terminal that
    only this process holds, and each PIN is written when it asks: SO PIN twice,
    then the user PIN twice. Returns softhsm2-util's exit status (-1 on time-out).
    """
    answers = [so_pin, so_pin, user_pin, user_pin]
    controller, terminal = pty.openpty()
    try:
        child = subprocess.Popen(  # noqa: S603 - fixed argv, no shell, no secrets
            [SOFTHSM_UTIL, "--init-token", "--free", "--label", label],
            stdin=terminal,
            stdout=terminal,
            stderr=terminal,
            env=env,
            close_fds=True,
            start_new_session=True,
        )
    finally:
        os.close(terminal)
    try:
        shown = b""
        deadline = time.monotonic() + INIT_TOKEN_SECONDS
        while (left := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select([controller], [], [], left)
            if not ready:
                break
            try:
                chunk = os.read(controller, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            shown += chunk
            if answers and shown.rstrip().endswith(b"PIN:"):
                os.write(controller, answers.pop(0).encode() + b"\n")
                shown = b""
        try:
            return child.wait(timeout=max(deadline - time.monotonic(), 1.0))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
            return -1
    finally:
        os.close(controller)


def _missing(conf_path: Path, label: str, traces: list[Path]) -> TokenMissing:
    return TokenMissing(
        f"the SoftHSM token {label!r} is not in the token directory of {conf_path}, but an"
        f" earlier token left {', '.join(str(p) for p in traces)}: mount or restore that"
        " token directory (a backup goes together with its PIN file). dairi never creates"
        " a new token over an earlier one's PIN."
    )


def _write_secret(path: Path, value: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(value + "\n")
