"""法人番号 (corporate number): a check digit followed by the 12-digit 会社法人等番号."""

from __future__ import annotations

from dairi import DairiError


class CorporateNumberError(DairiError, ValueError):
    """Not a well-formed 会社法人等番号 or 法人番号."""

    code = "CORPORATE_NUMBER_INVALID"


def check_digit(registered_number: str) -> int:
    """The check digit of a 12-digit 会社法人等番号.

    9 − (Σ_{n=1..12} P_n·Q_n mod 9), P_n the n-th digit from the right, Q_n = 1
    for odd n and 2 for even n.
    """
    if (
        len(registered_number) != 12
        or not registered_number.isascii()
        or not registered_number.isdigit()
    ):
        raise CorporateNumberError("a 会社法人等番号 is exactly 12 ASCII digits")
    total = sum(
        int(d) * (1 if n % 2 else 2) for n, d in enumerate(reversed(registered_number), start=1)
    )
    return 9 - total % 9


def corporate_number(registered_number: str) -> str:
    """The 13-digit 法人番号 for a 12-digit 会社法人等番号."""
    return f"{check_digit(registered_number)}{registered_number}"


def validate_corporate_number(number: str) -> str:
    """Return ``number`` if it is a 13-digit 法人番号 with a correct check digit."""
    if len(number) != 13 or not number.isascii() or not number.isdigit():
        raise CorporateNumberError("a 法人番号 is exactly 13 ASCII digits")
    if corporate_number(number[1:]) != number:
        raise CorporateNumberError("the 法人番号 check digit is wrong")
    return number
