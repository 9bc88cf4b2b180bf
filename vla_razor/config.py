"""Hydra/OmegaConf glue: where the configs and the shipped assets live, and the custom resolvers."""

from __future__ import annotations

import os
from importlib.resources import files
from pathlib import Path

from omegaconf import OmegaConf

import vla_razor.configs

PACKAGE_DIR = Path(__file__).resolve().parent
ASSETS_DIR = PACKAGE_DIR / "assets"


def config_dir() -> Path:
    """The hydra config directory: ``$VLA_RAZOR_CONFIGS``, else the installed ``vla_razor.configs``
    (the repository's ``configs/`` folder, mapped into the package at install time)."""
    env = os.environ.get("VLA_RAZOR_CONFIGS")
    path = Path(env) if env else Path(str(files(vla_razor.configs)))
    if not (path / "demos.yaml").is_file():
        source = "VLA_RAZOR_CONFIGS" if env else "the installed package vla_razor.configs"
        raise SystemExit(
            f"error: hydra configs not found in {str(path)!r} ({source}); reinstall vla-razor, or set "
            "VLA_RAZOR_CONFIGS to a folder holding demos.yaml, train.yaml, ..."
        )
    return path


def asset_path(name: str) -> str:
    """``${asset:pi0_tiny}`` -> absolute path of a shipped asset (e.g. the committed pi0 checkpoint)."""
    return str(ASSETS_DIR / name)


def register_resolvers() -> None:
    if not OmegaConf.has_resolver("asset"):
        OmegaConf.register_new_resolver("asset", asset_path)
