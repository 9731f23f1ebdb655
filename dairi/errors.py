"""The one error hierarchy: every refusal dairi explains carries a stable code."""

from __future__ import annotations


class DairiError(Exception):
    """Base of every coded failure.

    ``code`` is stable (a client or script can act on it) and ``message`` is safe
    to show the caller: it never holds a PIN, a key or personal data. Subclasses
    set ``code``; a caller may pass a more specific one.
    """

    code = "DAIRI_ERROR"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
