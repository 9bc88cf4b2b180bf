"""Test-wide settings: headless GL, single-threaded torch (2-core CI), quiet hydra."""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402

# Several test processes (vector-env workers) share 2 cores; oversubscription only slows everything.
torch.set_num_threads(1)
