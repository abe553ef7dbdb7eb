"""User-facing errors.

Everything raised as a ``VrbenchError`` is printed by the CLI as one clear message (no traceback),
because it describes a problem the user can fix: bad input, a missing file, an unknown name.
"""

from __future__ import annotations


class VrbenchError(Exception):
    """An error whose message is meant for the user, printed without a traceback."""


class ConfigError(VrbenchError):
    """A suite or option is malformed, unknown or impossible."""


class MissingResourceError(VrbenchError):
    """Weights or data are not on disk and cannot be downloaded; the message says what to fetch and where."""


class ResultsError(VrbenchError):
    """A results directory or database is unreadable, locked or inconsistent."""


class DiskSpaceError(VrbenchError):
    """A write would not fit on its filesystem; the message gives bytes needed and free and how to move it."""
