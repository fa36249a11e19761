"""Exception hierarchy shared by every PMSR market package.

Every exception the project raises derives from `PmsrError`. Subclasses also inherit the matching
built-in exception, so a caller that catches `ValueError` still catches an invalid input.
"""

from __future__ import annotations

__all__ = [
    "PmsrError",
    "ConfigurationError",
    "InvalidInputError",
]


class PmsrError(Exception):
    """Root of every error raised by PMSR market code."""


class ConfigurationError(PmsrError, ValueError):
    """A setting, file or environment value is missing or invalid."""


class InvalidInputError(PmsrError, ValueError):
    """A value supplied by a user or another party failed validation."""
