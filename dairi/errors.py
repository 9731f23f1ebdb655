"""The one error hierarchy: every refusal dairi explains carries a stable code."""

from __future__ import annotations

from dairi.problems import Problem, problem


class DairiError(Exception):
    """Base of every coded failure.

    ``code`` is stable (a client or script can act on it) and ``message`` is safe
    to show the caller: it never holds a PIN, a key or personal data. Subclasses
    set ``code``; a caller may pass a more specific one. Every code is defined once,
    with its HTTP status, in :data:`dairi.problems.CATALOGUE` (see :attr:`problem`).
    """

    code = "DAIRI_ERROR"
    # Seconds a client should wait before retrying (sent as Retry-After with 429/503)
    # when the raiser knows better than the default.
    retry_after: int | None = None
    # True when the raiser has logged this failure already: an outage is logged once
    # where it is detected, not once per request that meets it.
    logged: bool = False

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code

    @property
    def problem(self) -> Problem:
        """This error's entry in the catalogue: its HTTP status and description
        (:class:`dairi.problems.UnknownProblemCode` for a code that is not there)."""
        return problem(self.code)
