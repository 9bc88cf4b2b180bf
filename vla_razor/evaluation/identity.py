"""Which policy a result belongs to: content hashes of policy folders, and portable names for them.

A results folder is reused across invocations (an interrupted evaluation resumes), so a result must be
tied to the bytes of the policy that produced it, not to a folder name: a re-trained run written to the
same folder, or another pi0, would otherwise silently inherit old episodes. Results files name policies by
run-relative ids plus these hashes, never by absolute paths, so committed results stay portable.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from vla_razor.errors import MissingFileError

_CHUNK = 1 << 20


def policy_content_hash(policy_dir: str | os.PathLike[str]) -> str:
    """sha256 over every file of a saved policy folder (relative path and bytes, in sorted order).

    A LoRA checkpoint of a large model records where its base weights come from instead of copying them;
    that record is one of the hashed files, so the hash changes when the recorded source (its name or
    path) does, but not when the bytes behind that source change in place.
    """
    root = Path(policy_dir)
    if not root.is_dir():
        raise MissingFileError(f"policy folder {str(root)!r} does not exist")
    digest = hashlib.sha256()
    files = sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))
    if not files:
        raise MissingFileError(f"policy folder {str(root)!r} is empty")
    for path in files:
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        with open(path, "rb") as fh:
            while chunk := fh.read(_CHUNK):
                digest.update(chunk)
        digest.update(b"\0")
    return "sha256:" + digest.hexdigest()


def short_hash(content_hash: str) -> str:
    return content_hash.removeprefix("sha256:")[:12]


def portable_name(path: str | os.PathLike[str], packaged_assets: str | os.PathLike[str]) -> str:
    """How a results file names a policy folder: ``asset:<name>`` for the packaged ones, a path relative to
    the working directory when it lies below it, and otherwise only the folder's last two parts."""
    p = Path(path).resolve()
    assets = Path(packaged_assets).resolve()
    if p.is_relative_to(assets):
        return "asset:" + p.relative_to(assets).as_posix()
    cwd = Path.cwd().resolve()
    if p.is_relative_to(cwd):
        return p.relative_to(cwd).as_posix()
    return "/".join(p.parts[-2:])
