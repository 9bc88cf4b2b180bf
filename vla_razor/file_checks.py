"""Reading back the files vla-razor wrote, with damage reported in one line.

A checkpoint, a results folder's ``suite.json`` or a study unit can be cut short by a kill, a full disk or a
bad copy. Their readers (safetensors, torch, yaml, json) then fail deep inside with a traceback that names
neither the file nor the remedy. Each reader here turns that into a :class:`CorruptFileError` naming the
file and what to do; it only reads, so nothing of the good results around the bad file is touched.
"""

from __future__ import annotations

import json
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from safetensors import SafetensorError, safe_open
from yaml import YAMLError

from vla_razor.errors import CorruptFileError

# What to do about a damaged file, by the kind of folder that holds it.
RETRAIN = "re-train the run, or delete this checkpoint folder to fall back to an earlier one"
REEVALUATE = "re-evaluate into a fresh out_dir, or restore the file from a copy"
DELETE_UNIT = "delete the unit (the next `vla-razor razor` re-runs it) or restore it from git"

# What torch.load raises on a cut or garbled file (a zip without its central directory, a bad pickle).
_TORCH_LOAD_ERRORS = (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError)


def corrupt(path: Path, detail: str, remedy: str) -> CorruptFileError:
    return CorruptFileError(f"corrupt or truncated file {str(path)!r} ({detail}); {remedy}")


def read_json(path: str | Path, remedy: str) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise corrupt(path, str(err), remedy) from None


def read_json_object(path: str | Path, remedy: str) -> dict[str, Any]:
    """A JSON file that must hold an object (every results and study file does)."""
    value = read_json(path, remedy)
    if not isinstance(value, dict):
        raise corrupt(Path(path), f"holds a {type(value).__name__}, not an object", remedy)
    return value


def read_yaml(path: str | Path, remedy: str, required: tuple[str, ...] = ()) -> DictConfig:
    """A YAML mapping; ``required`` top-level keys catch a file cut at a line end (still valid YAML)."""
    path = Path(path)
    try:
        config = OmegaConf.load(path)
    except (YAMLError, UnicodeDecodeError) as err:
        raise corrupt(path, type(err).__name__, remedy) from None
    if not isinstance(config, DictConfig):
        raise corrupt(path, "not a mapping", remedy)
    missing = [key for key in required if key not in config]
    if missing:
        raise corrupt(path, f"no {', '.join(missing)}", remedy)
    return config


def load_torch(path: str | Path, remedy: str) -> Any:
    """A ``torch.save`` file of our own (full unpickling: it holds numpy RNG tuples and python objects)."""
    path = Path(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except _TORCH_LOAD_ERRORS as err:
        raise corrupt(path, str(err).splitlines()[0] if str(err) else type(err).__name__, remedy) from None


def check_safetensors(path: str | Path, remedy: str) -> None:
    """Open the file's header: a truncated or garbled file fails here, in one line, not in the loader."""
    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as fh:
            fh.keys()
    except SafetensorError as err:
        raise corrupt(path, str(err), remedy) from None


def check_policy_files(policy_dir: str | Path, remedy: str = RETRAIN) -> None:
    """Every weights file of a saved policy (backbone, LoRA adapter, value head) and, for a training
    checkpoint, its ``config.yaml``: checked before a policy is loaded or any episode is played."""
    policy_dir = Path(policy_dir)
    for file in sorted(policy_dir.rglob("*.safetensors")):
        check_safetensors(file, remedy)
    config = policy_dir.parent / "config.yaml"
    if (policy_dir.parent / "trainer_state.pt").is_file() and config.is_file():
        read_yaml(config, remedy)
