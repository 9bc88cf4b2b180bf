"""Offscreen rendering set-up: backend probe with a helpful error, the fast-render settings, and GL
context discipline.

On a CPU the renderer, not physics, is the bottleneck. Three MuJoCo settings make a software-rendered
frame about 3x cheaper without changing what a policy needs to see: no mirror reflections, no shadows and
no multisampling, plus an offscreen buffer no larger than the frames we read.

Context discipline: every env owns one GL context, and a MuJoCo render context (MjrContext) holds GL
object names (textures, mesh buffers, the offscreen framebuffer) that mean something only inside that GL
context. Names are small integers counted from 1 in every context, so two envs' contexts use the *same*
names for different objects. robosuite neither makes its context current before rendering nor before
freeing: an env rendered while another env's context is current draws with the wrong meshes and
textures, and a context garbage-collected after a newer env was built deletes the newer env's objects
(seeded resets then gave different images in one process). Hence: make the own context current before
every GL call (:func:`render_camera`), and free a context only inside itself
(:func:`release_render_context`, also installed as robosuite's finalizer).

Culling (:func:`render_camera` with ``cull=True``): mesh geoms the camera cannot see (outside its view
frustum, or behind the table from the eye-in-hand camera) are left out of the scene before drawing;
see :mod:`vla_razor.envs.culling`. The image is bit-identical (``tests/envs/test_fast_step_identity.py``).
"""

from __future__ import annotations

import contextlib
import functools
import os
from typing import Any

import mujoco
import numpy as np

# Through the gateway: it configures MUJOCO_GL before robosuite's rendering modules are imported.
from vla_razor.envs._robosuite import robosuite
from vla_razor.envs.culling import culler_for, hidden_from_scene
from vla_razor.envs.render_profiles import FULL, RenderProfile
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


def apply_fast_render(
    sim: Any, buffer_width: int, buffer_height: int, fast: bool = True, profile: RenderProfile = FULL
) -> Any:
    """Configure the sim's offscreen context; returns the context object that was configured.

    The MjrContext must be rebuilt for the multisampling, buffer-size and primitive-quality changes to
    take effect (it tessellates the built-in primitives when it is made), which robosuite does whenever
    its buffer grows; callers re-apply when the context object changes. ``profile`` adds the render
    profile's scene settings (:mod:`vla_razor.envs.render_profiles`); its meshes are chosen when the
    model is compiled.
    """
    ctx = sim._render_context_offscreen
    if ctx is None:
        raise RuntimeError("the simulation has no offscreen render context (has_offscreen_renderer=False)")
    ctx.gl_ctx.make_current()
    rebuild = False
    if fast:
        ctx.scn.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = 0
        ctx.scn.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = 0
        sim.model.vis.quality.offsamples = 0
        sim.model.vis.global_.offwidth = int(buffer_width)
        sim.model.vis.global_.offheight = int(buffer_height)
        rebuild = True
    if not profile.skybox:
        ctx.scn.flags[mujoco.mjtRndFlag.mjRND_SKYBOX] = 0
    if profile.primitive_quality is not None:
        quality = sim.model.vis.quality
        quality.numslices, quality.numstacks, quality.numquads = profile.primitive_quality
        rebuild = True
    if rebuild:
        ctx.con.free()
        ctx._set_mujoco_context_and_buffers()
    return ctx


def render_camera(sim: Any, camera: str, width: int, height: int, cull: bool = False) -> np.ndarray:
    """Render one camera as an upright uint8 [H, W, 3] image.

    MuJoCo reads pixels bottom-up (OpenGL convention); flipping the rows makes the image upright.
    ``cull=True`` leaves out the mesh geoms the camera cannot see (same pixels, fewer triangles);
    ``cull=False`` is robosuite's own ``sim.render``.
    """
    ctx = sim._render_context_offscreen
    if ctx is None:
        raise RuntimeError("the simulation has no offscreen render context (has_offscreen_renderer=False)")
    # The most recently created (or used) context is the current one, not necessarily this sim's: without
    # this, an env built before another one renders its scene with the other context's GL objects.
    ctx.gl_ctx.make_current()
    if cull:
        frame = _render_culled(sim, ctx, sim.model.camera_name2id(camera), width, height)
    else:
        frame = sim.render(width=width, height=height, camera_name=camera)
    return np.ascontiguousarray(frame[::-1])


def _render_culled(sim: Any, ctx: Any, camera_id: int, width: int, height: int) -> np.ndarray:
    """robosuite's ``MjRenderContext.render`` + ``read_pixels`` (no segmentation, no depth), with the mesh
    geoms this camera cannot see left out of the scene (:mod:`vla_razor.envs.culling`)."""
    model, data = sim.model._model, sim.data._data
    viewport = mujoco.MjrRect(0, 0, width, height)
    with robosuite.utils.binding_utils._MjSim_render_lock:
        if width > ctx.con.offWidth or height > ctx.con.offHeight:
            ctx.update_offscreen_size(
                max(width, sim.model.vis.global_.offwidth), max(height, sim.model.vis.global_.offheight)
            )
        ctx.cam.type = mujoco.mjtCamera.mjCAMERA_FIXED
        ctx.cam.fixedcamid = camera_id
        # The camera first (mjv_updateScene recomputes it identically), to know what it cannot see.
        mujoco.mjv_updateCamera(model, data, ctx.cam, ctx.scn)
        hidden = culler_for(ctx, model).hidden_geoms(data, ctx.scn, ctx.vopt, width, height)
        with hidden_from_scene(model, hidden):
            mujoco.mjv_updateScene(
                model, data, ctx.vopt, ctx.pert, ctx.cam, mujoco.mjtCatBit.mjCAT_ALL, ctx.scn
            )
        mujoco.mjr_render(viewport=viewport, scn=ctx.scn, con=ctx.con)
        rgb = np.empty((height, width, 3), dtype=np.uint8)
        mujoco.mjr_readPixels(rgb=rgb, depth=None, viewport=viewport, con=ctx.con)
    return rgb


def _free_in_own_context(ctx: Any) -> None:
    """Free a robosuite render context's MjrContext inside its own GL context, then the GL context.

    Idempotent, and silent: it runs from finalizers, possibly at interpreter exit.
    """
    gl_ctx = getattr(ctx, "gl_ctx", None)
    # Every backend's context (EGL, OSMesa, GLFW) holds its handle in ``_context``, None once freed.
    if gl_ctx is None or getattr(gl_ctx, "_context", None) is None:
        return
    with contextlib.suppress(Exception):
        gl_ctx.make_current()
        con = getattr(ctx, "con", None)
        if con is not None:
            con.free()
    # Leaves no context current if this one was; every render makes its own context current.
    with contextlib.suppress(Exception):
        gl_ctx.free()


def release_render_context(sim: Any) -> None:
    """Free the sim's offscreen render context now, inside its own GL context (no-op if it has none).

    robosuite's ``close()`` only drops the sim's reference; the context would be freed whenever the
    garbage collector gets to it (sim and context reference each other), in whatever context is current.
    """
    ctx = getattr(sim, "_render_context_offscreen", None)
    if ctx is not None:
        _free_in_own_context(ctx)
        sim._render_context_offscreen = None


def _install_safe_finalizer() -> None:
    """Make robosuite's render contexts free themselves inside their own GL context when collected.

    robosuite's ``MjRenderContext.__del__`` calls ``mjr_freeContext`` with whatever GL context is
    current, deleting that context's textures and buffers that share the freed names. This covers
    contexts nobody closed (an env dropped without ``close()``, raw robosuite envs); closing explicitly
    (:func:`release_render_context`) stays preferable because it does not wait for the collector.
    """
    robosuite.utils.binding_utils.MjRenderContext.__del__ = _free_in_own_context


_install_safe_finalizer()
