"""Test-wide settings: headless GL, single-threaded torch (2-core CI), quiet hydra."""

from __future__ import annotations

import fcntl
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402

# Several test processes (vector-env workers) share 2 cores; oversubscription only slows everything.
torch.set_num_threads(1)


@pytest.fixture(scope="module")
def ray_machine() -> Iterator[None]:
    """One test cluster on this machine at a time: `make test` runs test files in two processes, and two
    clusters' idle services and worker start-ups on 2 cores would slow both past their timeouts. Each
    module stops only its own cluster, so a study running on the machine's own Ray cluster survives."""
    with open(Path(tempfile.gettempdir()) / "vla-razor-tests-ray.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield
