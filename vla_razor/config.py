"""Hydra/OmegaConf glue: where the configs and the shipped assets live, and the custom resolvers."""

from __future__ import annotations

import os
from pathlib import Path

from omegaconf import OmegaConf

PACKAGE_DIR = Path(__file__).resolve().parent
ASSETS_DIR = PACKAGE_DIR / "assets"


def config_dir() -> Path:
    """The hydra config directory: ``$VLA_RAZOR_CONFIGS`` or the repository's ``configs/``."""
    env = os.environ.get("VLA_RAZOR_CONFIGS")
    path = Path(env) if env else PACKAGE_DIR.parent / "configs"
    if not (path / "demos.yaml").is_file():
        raise SystemExit(
            f"error: hydra configs not found in {str(path)!r}; install vla-razor editable from its repository "
            "(pip install -e .) or set VLA_RAZOR_CONFIGS to the configs/ folder"
        )
    return path


def asset_path(name: str) -> str:
    """``${asset:pi0_tiny}`` -> absolute path of a shipped asset (e.g. the committed pi0 checkpoint)."""
    return str(ASSETS_DIR / name)


def register_resolvers() -> None:
    if not OmegaConf.has_resolver("asset"):
        OmegaConf.register_new_resolver("asset", asset_path)
