"""Errors raised by the HSM layer; each carries a stable code a caller can act on."""

from dairi import DairiError


class HsmError(DairiError):
    """Base of every HSM failure; the message never holds a PIN."""

    code = "HSM_ERROR"


class HsmUnavailable(HsmError):
    """The PKCS#11 module cannot be loaded or the token cannot be reached."""

    code = "HSM_UNAVAILABLE"


class TokenNotFound(HsmError):
    """No token with the configured label is present."""

    code = "HSM_TOKEN_NOT_FOUND"


class PinIncorrect(HsmError):
    """The token refused the user PIN (or it is locked)."""

    code = "HSM_PIN_INCORRECT"


class KeyNotFound(HsmError):
    """No private key on the token matches the key reference."""

    code = "HSM_KEY_NOT_FOUND"


class UnsupportedScheme(HsmError):
    """The signature scheme does not fit the key's algorithm."""

    code = "HSM_UNSUPPORTED_SCHEME"
