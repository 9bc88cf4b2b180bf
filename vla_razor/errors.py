"""Errors the CLI reports as one line (bad input, nothing to do), as opposed to bugs (full traceback).

Only :class:`UserError` and its subclasses become a one-line ``error: ...`` exit; any other exception
keeps its traceback, so a genuine bug is never disguised as bad input. The two subclasses also derive
from the built-in exception a library caller would expect (``ValueError``, ``FileNotFoundError``), so
``except ValueError`` around a vla-razor call keeps working.
"""

import errno


class UserError(RuntimeError):
    """A problem the user can fix from the message alone."""


class BadInputError(UserError, ValueError):
    """A setting, argument or input file whose value is not valid; the message names what is."""


class MissingFileError(UserError, FileNotFoundError):
    """A file or directory the user named does not exist (or is not what it should hold)."""


class CorruptFileError(BadInputError):
    """A file vla-razor wrote earlier cannot be read (truncated by a kill, a full disk, a bad copy); the
    message names the file and what to do (re-train, re-evaluate, or delete the unit)."""


class DiskFullError(UserError):
    """A write found its filesystem full (or over quota); every file written before is whole."""

    def __init__(self, error: OSError) -> None:
        where = f" writing {error.filename!r}" if error.filename else ""
        super().__init__(
            f"the disk is full{where} ({error.strerror}); free space (or use another out_dir) and run the same "
            "command again: what was written is whole (append-only logs skip a cut last line, every other "
            "file is replaced atomically) and the command resumes from it"
        )


DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


class FolderBusyError(UserError):
    """A folder another live command is writing (its lock is held); the message names that command."""
