"""One logged-in PKCS#11 session per process, and what happens when the token goes away.

Measured with SoftHSM 2.6.1 (issue 16.3), token directory moved away under a
logged-in session: key searches find nothing (``NoSuchKey``, as if the key did not
exist), slot enumeration fails with ``CKR_GENERAL_ERROR``, and the session's token
label still answers from memory. When the directory comes back nothing changes —
searches still find nothing and every new ``C_OpenSession`` fails — until the
library is finalised and initialised again: SoftHSM reads its token directory at
``C_Initialize``. Hence:

- a search that finds nothing is checked against the token's presence (a fresh slot
  enumeration) before it is called a missing key;
- a lost session or token closes the session, and the next attempt re-initialises
  the library, with back-off between attempts (0.5 s doubling to 4 s), so an outage
  costs one PKCS#11 round trip per interval, not one per request;
- the outage is logged once when it starts and once when it ends.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import pkcs11

from hsm.config import HsmConfig
from hsm.errors import HsmError, HsmUnavailable, KeyNotFound, TokenNotFound
from hsm.login import LoginGate

if TYPE_CHECKING:
    # pkcs11.lib is a loader function; the class it returns lives in the extension module
    from pkcs11._pkcs11 import lib as Pkcs11Library

logger = logging.getLogger(__name__)

FIRST_RETRY_SECONDS = 0.5
MAX_RETRY_SECONDS = 4.0

# Answers that say the session or the token is gone, not that the request was wrong.
_LOST = (
    pkcs11.SessionClosed,
    pkcs11.SessionHandleInvalid,
    pkcs11.DeviceRemoved,
    pkcs11.DeviceError,
    pkcs11.DeviceMemory,
    pkcs11.GeneralError,
    pkcs11.FunctionFailed,
    pkcs11.TokenNotPresent,
    pkcs11.TokenNotRecognised,
    pkcs11.ObjectHandleInvalid,
    pkcs11.KeyHandleInvalid,
    pkcs11.UserNotLoggedIn,
)


def is_lost(exc: pkcs11.PKCS11Error) -> bool:
    """Whether a PKCS#11 error means the session or token is gone."""
    # python-pkcs11 raises the bare PKCS11Error for CKR_CRYPTOKI_NOT_INITIALIZED (the
    # library was finalised under this session).
    return isinstance(exc, _LOST) or (
        type(exc) is pkcs11.PKCS11Error and "not initialized" in str(exc)
    )


class _Library:
    """One PKCS#11 module as this process uses it, shared by every session keeper.

    PKCS#11 state belongs to the process: re-initialising the library ends every
    session opened on it, so re-initialisations are counted (``generation``) and a
    keeper whose session predates the current generation opens a new one. One
    re-entrant lock per module serialises every call (SoftHSM is initialised without
    locking; a session used from two threads at once crashes the process).
    """

    _registry: ClassVar[dict[str, _Library]] = {}
    _registry_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, path: str) -> None:
        self.path = path
        self.lock = threading.RLock()
        self.generation = 0
        self._pid: int | None = None  # the process whose C_Initialize holds
        self._lib: Pkcs11Library | None = None

    @classmethod
    def of(cls, path: str) -> _Library:
        with cls._registry_lock:
            if path not in cls._registry:
                cls._registry[path] = cls(path)
            return cls._registry[path]

    @classmethod
    def _after_fork_in_child(cls) -> None:
        # A lock held by another thread at fork would never be released in the child.
        cls._registry_lock = threading.Lock()
        for library in cls._registry.values():
            library.lock = threading.RLock()

    def load(self, *, reinitialise: bool) -> Pkcs11Library:
        """The initialised module; re-initialised first in a forked child or when
        ``reinitialise`` is asked. Call with :attr:`lock` held."""
        try:
            lib = pkcs11.lib(self.path)
        except Exception as exc:  # the module could not be loaded at all
            raise HsmUnavailable(f"cannot load PKCS#11 module {self.path}") from exc
        forked = self._pid is not None and self._pid != os.getpid()
        if forked or reinitialise:
            # In a forked child SoftHSM (reset_on_fork) has dropped the parent's state
            # already, so C_Finalize may fail; after an outage the token directory is
            # read again only by C_Initialize.
            with contextlib.suppress(pkcs11.PKCS11Error):
                lib.finalize()
            try:
                lib.initialize()
            except pkcs11.PKCS11Error as exc:
                raise HsmUnavailable(
                    f"cannot initialise PKCS#11 module {self.path} ({type(exc).__name__})"
                ) from exc
            self.generation += 1
        self._pid = os.getpid()
        self._lib = lib
        return lib


os.register_at_fork(after_in_child=_Library._after_fork_in_child)


@dataclass
class _Outage:
    since: float
    failures: int = 0
    retry_at: float = 0.0


class SessionKeeper:
    """The logged-in session of one :class:`HsmConfig` in this process.

    :meth:`session` yields it under the module's lock and turns PKCS#11 failures
    into :class:`HsmError` subclasses: :class:`HsmUnavailable` for an outage (with
    ``retry_after`` and ``logged`` set), :class:`KeyNotFound` only when the token is
    present and the key is not.
    """

    def __init__(self, config: HsmConfig, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.gate = LoginGate(config)
        self._library = _Library.of(config.module_path)
        self._clock = clock
        self._session: pkcs11.Session | None = None
        self._pid: int | None = None
        self._generation = -1
        self._reinitialise_from: int | None = None  # generation that failed us
        self._outage: _Outage | None = None

    @property
    def lock(self) -> threading.RLock:
        return self._library.lock

    @contextlib.contextmanager
    def session(self, *, writes: bool = False) -> Iterator[pkcs11.Session]:
        """The logged-in session, for one operation, under the module's lock and taking
        turns on the token with the other processes (:meth:`LoginGate.token_lock`):
        shared to search, read and sign, exclusive with ``writes`` (an operation that
        creates or destroys token objects). Measured with SoftHSM 2.6.1: a process
        generating keys while two others listed the token's keys failed every run,
        its new key not found (``KeyNotFound``) or its session lost
        (``CKR_FUNCTION_FAILED``), and a lister's session was lost too."""
        with self._library.lock:
            session = self._current()
            try:
                with self.gate.token_lock(shared=not writes):
                    yield session
            except KeyNotFound:
                # SoftHSM without its token directory finds no objects: make sure the
                # token is there before calling the key absent.
                self.confirm_token()
                raise
            except pkcs11.PKCS11Error as exc:
                if is_lost(exc):
                    raise self._fail(
                        HsmUnavailable(
                            f"the session on token {self.config.token_label!r} was lost"
                            f" ({type(exc).__name__})"
                        )
                    ) from exc
                raise HsmError(f"PKCS#11 operation failed: {type(exc).__name__}") from exc

    def confirm_token(self) -> None:
        """Enumerate the slots afresh and find the token; raises :class:`HsmUnavailable`
        (and starts an outage) when it is gone. Call inside :meth:`session`."""
        try:
            with self.gate.token_lock(shared=True):
                lib = self._library.load(reinitialise=False)
                self._find_token(lib)
        except HsmUnavailable as exc:
            raise self._fail(exc) from exc.__cause__

    def close(self) -> None:
        with self._library.lock:
            self._drop()

    # -- opening ---------------------------------------------------------------

    def _current(self) -> pkcs11.Session:
        if self._pid != os.getpid():
            self._session = None  # a forked child: the parent's session is not ours
        elif self._session is not None and self._generation != self._library.generation:
            self._session = None  # another keeper here re-initialised the library
        if self._session is None:
            self._session = self._open()
            self._pid = os.getpid()
            self._generation = self._library.generation
        return self._session

    def _open(self) -> pkcs11.Session:
        outage = self._outage
        now = self._clock()
        if outage is not None and now < outage.retry_at:
            error = HsmUnavailable(
                f"token {self.config.token_label!r} is unavailable; next attempt in"
                f" {outage.retry_at - now:.1f} s"
            )
            error.logged = True
            error.retry_after = max(1, math.ceil(outage.retry_at - now))
            raise error
        # Re-initialise after a failure unless another keeper here has done so since.
        reinitialise = (
            self._reinitialise_from is not None
            and self._reinitialise_from == self._library.generation
        )
        try:
            # One process at a time opens (see hsm.login: a C_Login elsewhere hides the
            # token from C_Initialize and slot enumeration here).
            with self.gate.token_lock(shared=False):
                lib = self._library.load(reinitialise=reinitialise)
                token = self._find_token(lib)
                session = self.gate.open(token)
        except HsmUnavailable as exc:
            raise self._fail(exc) from exc.__cause__
        self._reinitialise_from = None
        if self._outage is not None:
            logger.warning(
                "HSM: token %r is available again after %.1f s (%d failed attempts)",
                self.config.token_label,
                now - self._outage.since,
                self._outage.failures,
            )
            self._outage = None
        return session

    def _find_token(self, lib: Pkcs11Library) -> pkcs11.Token:
        label = self.config.token_label
        try:
            return lib.get_token(token_label=label)
        except pkcs11.NoSuchToken as exc:
            raise TokenNotFound(f"no token labelled {label!r} is present") from exc
        except pkcs11.MultipleTokensReturned as exc:
            raise HsmUnavailable(f"several tokens are labelled {label!r}") from exc
        except pkcs11.PKCS11Error as exc:
            raise HsmUnavailable(
                f"cannot enumerate the slots for token {label!r} ({type(exc).__name__})"
            ) from exc

    # -- failing ---------------------------------------------------------------

    def _fail(self, error: HsmUnavailable) -> HsmUnavailable:
        """Close the session, schedule the next attempt and log the outage once."""
        now = self._clock()
        self._drop()
        self._reinitialise_from = self._library.generation
        if self._outage is None:
            self._outage = _Outage(since=now)
            logger.warning(
                "HSM: %s; requests get 503 HSM_UNAVAILABLE, retrying every %.1f-%.0f s",
                error.message,
                FIRST_RETRY_SECONDS,
                MAX_RETRY_SECONDS,
            )
        outage = self._outage
        outage.failures += 1
        delay = min(MAX_RETRY_SECONDS, FIRST_RETRY_SECONDS * 2 ** (outage.failures - 1))
        outage.retry_at = now + delay
        error.logged = True
        error.retry_after = max(1, math.ceil(delay))
        return error

    def _drop(self) -> None:
        if self._session is not None and self._pid == os.getpid():
            with contextlib.suppress(pkcs11.PKCS11Error):
                self._session.close()
        self._session = None
