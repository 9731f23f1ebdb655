"""How names on certificates compare."""

from __future__ import annotations


def same_name(a: str, b: str) -> bool:
    """Names compare without their spaces (ASCII or the ideographic U+3000)."""
    return "".join(a.split()) == "".join(b.split())
