"""The one test of "a number" that config values and constructor arguments share."""

from __future__ import annotations

from numbers import Real


def is_number(value: object) -> bool:
    """A real number that is not a bool (YAML's ``true`` is an int to Python)."""
    return isinstance(value, Real) and not isinstance(value, bool)
