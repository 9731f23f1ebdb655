"""Errors raised by the HSM layer; each carries a stable code a caller can act on."""

from dairi import DairiError


class HsmError(DairiError):
    """Base of every HSM failure; the message never holds a PIN."""

    code = "HSM_ERROR"


class HsmUnavailable(HsmError):
    """The PKCS#11 module cannot be loaded or the token cannot be reached (an outage:
    retrying later may succeed)."""

    code = "HSM_UNAVAILABLE"


class TokenNotFound(HsmUnavailable):
    """No token with the configured label is present.

    PKCS#11 cannot tell a token that is not mounted yet, one that went away and a
    wrong label apart, so to a client this is the same outage (``HSM_UNAVAILABLE``);
    the message says which label was looked for.
    """


class TokenMissing(HsmError):
    """Set-up found no token although an earlier one left traces (its PIN file, its
    token directory, keys the development PKI refers to), or found no token at all
    outside ``dairi init``. Set-up never creates a token over an earlier one's PIN."""

    code = "HSM_TOKEN_MISSING"


class PinIncorrect(HsmError):
    """The token refused the user PIN (or it is locked)."""

    code = "HSM_PIN_INCORRECT"


class KeyNotFound(HsmError):
    """No private key on the token matches the key reference."""

    code = "HSM_KEY_NOT_FOUND"


class UnsupportedScheme(HsmError):
    """The signature scheme does not fit the key's algorithm."""

    code = "HSM_UNSUPPORTED_SCHEME"
