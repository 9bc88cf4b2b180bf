"""Errors the CLI reports as one line (bad input, nothing to do), as opposed to bugs (full traceback)."""


class UserError(RuntimeError):
    """A problem the user can fix from the message alone."""
