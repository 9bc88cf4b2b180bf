"""Offscreen rendering set-up: backend probe with a helpful error, and the fast-render settings.

On a CPU the renderer, not physics, is the bottleneck. Three MuJoCo settings make a software-rendered
frame about 3x cheaper without changing what a policy needs to see: no mirror reflections, no shadows and
no multisampling, plus an offscreen buffer no larger than the frames we read.
"""

from __future__ import annotations

import functools
import os
from typing import Any

import mujoco
import numpy as np

from vla_razor.envs._robosuite import robosuite  # noqa: F401  (configures MUJOCO_GL before the context import)
from vla_razor.errors import UserError

_PACKAGES_HINT = (
    "install the Mesa GL libraries: `apt-get install libegl1 libegl-mesa0 libgl1-mesa-dri libgl1 libopengl0` "
    "(MUJOCO_GL=egl), or `apt-get install libosmesa6` and set MUJOCO_GL=osmesa"
)


class RenderingUnavailableError(UserError):
    """Raised when no offscreen OpenGL context can be created in this process."""


@functools.cache
def check_rendering_backend() -> str:
    """Create and free a tiny GL context once per process; raise a clear error if that is impossible.

    Returns the backend name (``MUJOCO_GL``). robosuite would otherwise fail deep inside PyOpenGL with a
    message that does not say which system packages are missing.
    """
    backend = os.environ.get("MUJOCO_GL", "egl").lower()
    try:
        if backend == "osmesa":
            from robosuite.renderers.context.osmesa_context import OSMesaGLContext as GLContext
        elif backend == "egl":
            from robosuite.renderers.context.egl_context import EGLGLContext as GLContext
        else:
            from robosuite.renderers.context.glfw_context import GLFWGLContext as GLContext
        ctx = GLContext(max_width=8, max_height=8, device_id=-1)
        ctx.make_current()
        ctx.free()
    except Exception as exc:  # any failure here means "no usable GL", whatever PyOpenGL calls it
        raise RenderingUnavailableError(
            f"offscreen rendering with MUJOCO_GL={backend!r} failed ({type(exc).__name__}: {exc}); {_PACKAGES_HINT}"
        ) from exc
    return backend


def apply_fast_render(sim: Any, buffer_width: int, buffer_height: int, fast: bool = True) -> Any:
    """Configure the sim's offscreen context; returns the context object that was configured.

    The MjrContext must be rebuilt for the multisampling and buffer-size changes to take effect, which
    robosuite does whenever its buffer grows; callers re-apply when the context object changes.
    """
    ctx = sim._render_context_offscreen
    if ctx is None:
        raise RuntimeError("the simulation has no offscreen render context (has_offscreen_renderer=False)")
    ctx.gl_ctx.make_current()
    if fast:
        ctx.scn.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = 0
        ctx.scn.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = 0
        sim.model.vis.quality.offsamples = 0
        sim.model.vis.global_.offwidth = int(buffer_width)
        sim.model.vis.global_.offheight = int(buffer_height)
        ctx.con.free()
        ctx._set_mujoco_context_and_buffers()
    return ctx


def render_camera(sim: Any, camera: str, width: int, height: int) -> np.ndarray:
    """Render one camera as an upright uint8 [H, W, 3] image.

    MuJoCo reads pixels bottom-up (OpenGL convention); flipping the rows makes the image upright.
    """
    frame = sim.render(width=width, height=height, camera_name=camera)
    return np.ascontiguousarray(frame[::-1])
