"""Errors the CLI reports as one line (bad input, nothing to do), as opposed to bugs (full traceback).

Only :class:`UserError` and its subclasses become a one-line ``error: ...`` exit; any other exception
keeps its traceback, so a genuine bug is never disguised as bad input. The two subclasses also derive
from the built-in exception a library caller would expect (``ValueError``, ``FileNotFoundError``), so
``except ValueError`` around a vla-razor call keeps working.
"""


class UserError(RuntimeError):
    """A problem the user can fix from the message alone."""


class BadInputError(UserError, ValueError):
    """A setting, argument or input file whose value is not valid; the message names what is."""


class MissingFileError(UserError, FileNotFoundError):
    """A file or directory the user named does not exist (or is not what it should hold)."""
