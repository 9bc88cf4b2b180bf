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


class CorruptFileError(BadInputError):
    """A file vla-razor wrote earlier cannot be read (truncated by a kill, a full disk, a bad copy); the
    message names the file and what to do (re-train, re-evaluate, or delete the unit)."""


class FolderBusyError(UserError):
    """A folder another live command is writing (its lock is held); the message names that command."""
