"""Small filesystem helpers shared by every writer: atomic writes and clear errors for bad paths."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from vla_razor.errors import BadInputError


def ensure_writable_dir(path: str | os.PathLike[str], what: str = "output directory") -> Path:
    """Create ``path`` if needed and check we can write into it; one-line error otherwise."""
    directory = Path(path).expanduser()
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BadInputError(
            f"{what} {str(directory)!r} cannot be created ({exc.strerror}); choose a writable path"
        ) from None
    if not os.access(directory, os.W_OK | os.X_OK):
        raise BadInputError(f"{what} {str(directory)!r} is not writable; choose a writable path")
    return directory


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike[str], suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; rename it onto ``final`` only if the block succeeds.

    Readers therefore never see a half-written file: either the old file or the complete new one.
    The temporary name keeps ``final``'s suffix because some writers (ffmpeg, h5py) infer the format from it.
    """
    final = Path(final)
    ensure_writable_dir(final.parent)
    suffix = final.suffix if suffix is None else suffix
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final.stem}.", suffix=f".tmp{suffix}", dir=final.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.replace(tmp, final)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if exc.filename is None:  # a failed write() names no file (a full disk): name the one being written
            raise OSError(exc.errno, exc.strerror, str(final)) from exc
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_json_atomic(path: str | os.PathLike[str], payload: Any) -> Path:
    """Write ``payload`` as indented JSON through a temporary file and an atomic rename."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=2, sort_keys=False, default=_json_default) + "\n")
    return Path(path)


def _json_default(value: Any) -> Any:
    # numpy scalars/arrays and paths show up in results; make them JSON without importing numpy here.
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"cannot serialise {type(value).__name__} to JSON")
