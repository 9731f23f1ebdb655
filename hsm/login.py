"""Logging in to the token without ever retrying a refused PIN.

A real HSM locks the user PIN after a few refused logins, and a locked PIN needs
the security officer; a service that retried on every request (issue 16.4: 32,600
failed logins in minutes) would lock it at once. So a refused login is recorded,
and no process that shares the record tries that PIN again. The PIN counts as new —
worth one more try — when its source changes: the PIN file is edited (see
:meth:`hsm.HsmConfig.pin_source`), or an operator removes the record
(``dairi hsm unlock``) after fixing the token side. A restart alone does not clear
the record: a crash-looping service would otherwise spend one try per restart.

Processes sharing a token also take turns with it (:meth:`LoginGate.token_lock`):
SoftHSM 2.6.1 rewrites the token's object file at every ``C_Login`` (its flags), and
another process reading the token at that instant — ``C_Initialize``, a slot
enumeration — finds no token or gets ``CKR_GENERAL_ERROR`` (measured in
tests/test_hsm_processes.py: two checks in three failed beside a process logging in).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pkcs11

from hsm.config import HsmConfig
from hsm.errors import HsmUnavailable, PinIncorrect

logger = logging.getLogger(__name__)


class LoginGate:
    """Opens logged-in sessions for one :class:`HsmConfig`; refuses, without calling
    ``C_Login``, a PIN the token has refused before.

    With ``config.lockout_file`` the record is that file, shared by every process of
    the installation (gunicorn workers, commands) and kept across restarts; one
    refused login is made at a time under an exclusive ``flock``, so N workers
    starting with a wrong PIN make one attempt, not N. Without it the record lives in
    this object.
    """

    def __init__(self, config: HsmConfig) -> None:
        self.config = config
        self._refused_here: str | None = None  # pin_source refused, when no file holds it
        self._token_lock: tuple[Path | None] | None = None  # see _token_lock_path

    @property
    def _file(self) -> Path | None:
        return Path(self.config.lockout_file) if self.config.lockout_file else None

    def open(self, token: pkcs11.Token) -> pkcs11.Session:
        """A read-write session on ``token``, logged in as the user.

        Raises :class:`PinIncorrect` if the PIN is refused now or was refused before
        from the same source (then nothing is sent to the token), or none is
        configured; :class:`HsmUnavailable` for any other failure to open.
        """
        with self._exclusive():
            source = self.config.pin_source()
            refused_at = self._refused_at(source)
            if refused_at is not None:
                error = PinIncorrect(
                    f"token {self.config.token_label!r} refused this user PIN at {refused_at};"
                    " no login is tried until the PIN file changes or an operator runs"
                    " `dairi hsm unlock`"
                )
                error.logged = True  # logged once, when the token refused it
                raise error
            pin = self.config.read_pin()
            try:
                session = token.open(rw=True, user_pin=pin)
            except pkcs11.UserAlreadyLoggedIn:
                # Login state is per process: another Hsm here is logged in already.
                # (python-pkcs11 0.9 leaves the handle of the refused login open.)
                session = token.open(rw=True)
            except (pkcs11.PinIncorrect, pkcs11.PinLenRange, pkcs11.PinLocked) as exc:
                self._record(source)
                logger.warning(
                    "HSM: token %r refused the user PIN (%s); no further login will be tried"
                    " until the PIN file changes or `dairi hsm unlock`",
                    self.config.token_label,
                    type(exc).__name__,
                )
                error = PinIncorrect(f"token {self.config.token_label!r} refused the user PIN")
                error.logged = True
                raise error from exc
            except pkcs11.PKCS11Error as exc:
                raise HsmUnavailable(
                    f"cannot open a session on {self.config.token_label!r} ({type(exc).__name__})"
                ) from exc
            finally:
                del pin
            self._clear()
            return session

    @contextlib.contextmanager
    def token_lock(self, *, shared: bool) -> Iterator[None]:
        """Take turns with the other processes on the token: exclusive to open a
        session (``C_Initialize``, slot enumeration, ``C_Login``), shared to enumerate
        the slots beside a session. An ``flock`` on a file in SoftHSM's token
        directory (which SoftHSM ignores: it reads only subdirectories there), else
        beside the login record; with neither, nothing to share."""
        path = self._token_lock_path()
        if path is None:
            yield
            return
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError:
            yield
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def _token_lock_path(self) -> Path | None:
        if self._token_lock is None:  # found once: SOFTHSM2_CONF is read at C_Initialize
            conf = os.environ.get("SOFTHSM2_CONF")
            path = self._file
            if conf:
                # Beside SoftHSM's configuration, not in its token directory: a file
                # there would look like an earlier token's trace (hsm.softhsm).
                self._token_lock = (Path(conf).with_name(Path(conf).name + ".dairi-lock"),)
            elif path is not None:
                self._token_lock = (path.with_name(path.name + ".token-lock"),)
            else:
                self._token_lock = (None,)
        return self._token_lock[0]

    def unlock(self) -> bool:
        """Forget a refused login (the operator has fixed the PIN or the token).
        Returns True if a record was removed."""
        self._refused_here = None
        path = self._file
        if path is None:
            return False
        with self._exclusive():
            try:
                path.unlink()
            except FileNotFoundError:
                return False
        return True

    def refused_at(self) -> str | None:
        """When the current PIN source was refused (ISO time), or None."""
        return self._refused_at(self.config.pin_source())

    # -- the record ------------------------------------------------------------

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[None]:
        path = self._file
        if path is None:
            yield
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        except OSError:
            yield  # cannot share the record: this process still keeps its own
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def _refused_at(self, source: str) -> str | None:
        path = self._file
        if path is not None:
            try:
                record = json.loads(path.read_text(encoding="utf-8"))
            except FileNotFoundError:
                record = None
            except (OSError, ValueError):
                # Unreadable or garbled: a login might be refused again, so do not try.
                return "an unknown time (the record is unreadable)"
            if isinstance(record, dict) and record.get("pin_source") == source:
                return str(record.get("refused_at"))
        if self._refused_here == source:
            return "an earlier attempt in this process"
        return None

    def _record(self, source: str) -> None:
        path = self._file
        if path is not None:
            record = {
                "pin_source": source,
                "refused_at": datetime.now(UTC).isoformat(),
                "token_label": self.config.token_label,
            }
            try:
                tmp = path.with_name(path.name + ".tmp")
                tmp.write_text(json.dumps(record) + "\n", encoding="utf-8")
                os.replace(tmp, path)
                return
            except OSError:
                logger.warning(
                    "HSM: cannot write the login record %s; this process alone"
                    " will not retry the PIN",
                    path,
                )
        self._refused_here = source

    def _clear(self) -> None:
        self._refused_here = None
        path = self._file
        if path is not None:
            with contextlib.suppress(OSError):
                path.unlink()
