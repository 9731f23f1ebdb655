"""PKCS#11 key custody: the one place in dairi that talks to an HSM.

Keys are generated inside the token and never leave it. A process holds one
logged-in session behind a lock (SoftHSM is initialised without locking, so one
session used from several threads at once crashes the process) and opens a new
one after ``fork`` or after an outage; a PIN the token refused is not tried again
(:mod:`hsm.session`, :mod:`hsm.login`).
"""

from hsm.config import HsmConfig
from hsm.csr import build_csr
from hsm.device import Hsm
from hsm.errors import (
    HsmError,
    HsmUnavailable,
    KeyNotFound,
    PinIncorrect,
    TokenMissing,
    TokenNotFound,
    UnsupportedScheme,
)
from hsm.keys import KeyAlgorithm, KeyRef, SignatureScheme

__all__ = [
    "Hsm",
    "HsmConfig",
    "HsmError",
    "HsmUnavailable",
    "KeyAlgorithm",
    "KeyNotFound",
    "KeyRef",
    "PinIncorrect",
    "SignatureScheme",
    "TokenMissing",
    "TokenNotFound",
    "UnsupportedScheme",
    "build_csr",
]
