"""Shared by every dairi package: the one error base."""

from dairi.errors import DairiError

__all__ = ["DairiError"]
