"""Exceptions whose messages name the fix.

Every error a user can cause (a missing dataset, a bad suspect, a tampered kit) is a
:class:`UapfpError`; the CLI prints its message on one line and exits with a non-zero code.
"""

from __future__ import annotations


class UapfpError(Exception):
    """Base class of every error uapfp reports to a user (the message names the fix)."""

    exit_code: int = 2


class DatasetNotFoundError(UapfpError):
    """A dataset could be neither found locally nor downloaded."""


class ConfigError(UapfpError):
    """A configuration value, a name or a path is invalid."""


class SuspectError(UapfpError):
    """A suspect misbehaved: wrong shape, invalid outputs, an HTTP error."""


class BudgetExhaustedError(SuspectError):
    """The next query would exceed the suspect's query budget (nothing was sent)."""


class SuspectUnavailableError(SuspectError):
    """A remote suspect stopped answering: every retry of a request failed (timeouts, 5xx, resets)."""


class KitIntegrityError(UapfpError):
    """A kit's files do not match its manifest."""


class UnsafeFileError(UapfpError):
    """A file would need unpickling or reaches outside its folder; it was refused."""
