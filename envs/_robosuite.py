"""The single gateway to robosuite: configure the process, then import it.

robosuite reads ``robosuite.macros_private`` at import time and complains loudly when it is missing; it
also picks the GL backend from ``MUJOCO_GL`` when its rendering module is first imported. Both must be
settled *before* the first ``import robosuite`` anywhere in the process, so every module of the project
imports robosuite through this file and never directly.
"""

from __future__ import annotations

import logging
import os
import sys
import types
import warnings

# Headless rendering: EGL through Mesa works on CPU-only machines. A user's explicit choice wins
# (osmesa is the documented fallback when libEGL is unavailable).
if "MUJOCO_GL" not in os.environ:
    os.environ["MUJOCO_GL"] = "egl"
if "PYOPENGL_PLATFORM" not in os.environ and os.environ["MUJOCO_GL"] in ("egl", "osmesa"):
    os.environ["PYOPENGL_PLATFORM"] = os.environ["MUJOCO_GL"]
# robosuite's EGL picks its device from CUDA_VISIBLE_DEVICES and fails on an empty one ("invalid literal for
# int()"), which is what a job without GPUs gets from submitit and SLURM. Device 0 is the one it would take
# with the variable unset (on a machine without GPUs, Mesa's); CUDA_VISIBLE_DEVICES itself is kept.
if os.environ.get("CUDA_VISIBLE_DEVICES") == "" and "MUJOCO_EGL_DEVICE_ID" not in os.environ:
    os.environ["MUJOCO_EGL_DEVICE_ID"] = "0"


def _numba_imports() -> bool:
    """Whether numba is installed for real (the simulator bundle's placeholder raises ImportError)."""
    try:
        from numba import njit  # noqa: F401
    except ImportError:
        return False
    return True


def _install_private_macros() -> None:
    """Register an in-memory ``robosuite.macros_private`` so robosuite finds it without site-packages writes."""
    if "robosuite.macros_private" in sys.modules:
        return
    macros = types.ModuleType("robosuite.macros_private")
    # "opencv" makes robosuite flip camera images itself, so they come out upright.
    macros.IMAGE_CONVENTION = "opencv"
    # Only real problems reach the console; robosuite logs every controller load at INFO.
    macros.CONSOLE_LOGGING_LEVEL = "ERROR"
    macros.FILE_LOGGING_LEVEL = None
    # robosuite's controller kernels are numba-compiled (cached on disk) where numba imports; without it
    # (benchmarks/sim_bundle.py's bundle ships a placeholder numba module) they run as plain Python.
    macros.ENABLE_NUMBA = _numba_imports()
    macros.CACHE_NUMBA = True
    sys.modules["robosuite.macros_private"] = macros


_install_private_macros()

with warnings.catch_warnings():
    # robosuite's optional-dependency probes (mink, mimicgen, ...) emit warnings at import time.
    warnings.simplefilter("ignore")
    import robosuite  # noqa: E402
    from robosuite.controllers import load_composite_controller_config  # noqa: E402
    from robosuite.environments.base import REGISTERED_ENVS  # noqa: E402

# robosuite's logger prints "controller for head/base/legs not found" at WARNING during env creation
# for single-arm robots; those parts simply do not exist on a Panda.
logging.getLogger("robosuite_logs").setLevel(logging.ERROR)
for _handler in logging.getLogger("robosuite_logs").handlers:
    _handler.setLevel(logging.ERROR)

__all__ = ["REGISTERED_ENVS", "load_composite_controller_config", "robosuite"]
