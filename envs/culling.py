"""Which mesh geoms a camera cannot see, decided before MuJoCo builds its scene.

On a CPU the renderer (Mesa's llvmpipe) pays for every triangle it is sent, on screen or not. The
Panda and its mount are about 170k triangles (the pedestal alone 33k), and most of them are invisible
to a 64x64 policy camera: the upper arm is above agentview's frame, the whole arm is behind the
eye-in-hand camera, and the pedestal is under the table from the eye-in-hand camera. Two conservative
tests find such geoms:

- **frustum**: the geom's bounding box (``model.geom_aabb``, checked once to contain the mesh) lies
  wholly outside one plane of the view frustum that ``mjr_render`` builds (``glFrustum`` with the
  viewport's aspect ratio, from the average of the scene's two eye cameras);
- **occlusion**: the bounding box lies wholly in the shadow of a face of an opaque box geom (the
  table top, a bin's floor): every ray from the camera to it crosses that face, well inside its edges
  and between the near and far planes, before reaching it. That shadow is convex (the part of the cone
  over the face beyond its plane), so its corners suffice.

A geom that passes either test cannot put a pixel on the image (it is clipped, or loses the depth test
to the face): the image is bit-identical without it. Every margin errs towards drawing (boxes grow by
1 cm, the frustum by 2%, occluder faces shrink by 1 cm and must lie 1 cm beyond the near plane), so
float32 camera data and rasterisation rules cannot turn a visible geom into a culled one. The tests only hold without shadows and mirror reflections (an unseen geom can cast
a shadow or be reflected into view: ``fast_render=False`` renders everything), with opaque geoms only
(transparent ones are sorted by distance, and their order must not change), and for a plain perspective
camera; otherwise nothing is culled.

A big mesh whose box is partly outside the frustum and partly behind a face (the pedestal's box reaches
from under the table, occluded, to beside it, outside the eye-in-hand camera's view) is tested again in
pieces, each of which must pass one of the tests.

Culled geoms leave the scene by having their alpha set to 0 while ``mjv_updateScene`` runs (MuJoCo skips
invisible geoms), then restored: the scene is exactly the one the model would give without them.

The tests are numba kernels (a decision, not a result: their floating point need not match anything, only
err on the safe side): 25-60 us per render here, against 2-12 ms of drawing saved. The first use on a
machine compiles them (about 5 s), then numba's cache (``envs/__pycache__``) loads them in milliseconds.

Measured (``benchmarks/env_throughput.py --profile``, AMD EPYC, 2 cores; ms per step, draw + read-back
of both policy cameras): lift 20.3 -> 9.5, grasp_lift_bread 25.0 -> 18.0. Of the ~170k triangles,
agentview still draws ~100-140k (the arm and pedestal it sees) and the eye-in-hand camera ~12-47k.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import mujoco
import numba
import numpy as np

# The 8 corners of a unit box, as signs of the half-sizes.
_BOX_CORNERS = np.array([[x, y, z] for x in (-1.0, 1.0) for y in (-1.0, 1.0) for z in (-1.0, 1.0)])
MARGIN_M = 0.01  # bounding boxes grow, occluder faces shrink, by this much
FRUSTUM_SLACK = 1.02  # the frustum grows by 2% in every direction
MIN_OCCLUDER_HALF_M = 0.05  # box faces smaller than 10 cm x 10 cm are not worth testing
SPLIT, SPLIT_MIN_TRIANGLES = 4, 5000  # big meshes are also tested in SPLIT^3 pieces
# Faces of a box (-x, +x, -y, +y, -z, +z): the axis normal to the face and the two in-face axes.
_FACE_AXES = ((0, 1, 2), (0, 1, 2), (1, 0, 2), (1, 0, 2), (2, 0, 1), (2, 0, 1))


class SceneCuller:
    """Per-model precomputation, then :meth:`hidden_geoms` per render."""

    def __init__(self, model: Any) -> None:
        self.model = model
        keep = []
        for geom in np.flatnonzero(model.geom_type == mujoco.mjtGeom.mjGEOM_MESH):
            mesh = model.geom_dataid[geom]
            start, count = model.mesh_vertadr[mesh], model.mesh_vertnum[mesh]
            verts = model.mesh_vert[start : start + count]
            centre, half = model.geom_aabb[geom, :3], model.geom_aabb[geom, 3:]
            # Safety net: a mesh whose box does not hold its vertices is never culled.
            if count and np.all(np.abs(verts - centre) <= half + 1e-6):
                keep.append(geom)
        self.meshes = np.asarray(keep, dtype=np.int64)
        triangles = model.mesh_facenum[model.geom_dataid[self.meshes]]
        centre, half = model.geom_aabb[self.meshes, :3], model.geom_aabb[self.meshes, 3:]
        # (meshes, 8, 3): box corners in the geom frame, grown by the margin.
        self.local_corners = np.ascontiguousarray(
            centre[:, None] + _BOX_CORNERS[None] * (half[:, None] + MARGIN_M)
        )
        self.split = np.asarray(triangles >= SPLIT_MIN_TRIANGLES, dtype=np.bool_)
        # (meshes, SPLIT^3, 8, 3): the pieces' corners, each piece grown by the margin.
        offsets = 2 * (np.arange(SPLIT) + 0.5) / SPLIT - 1  # piece centres along an axis, in half-sizes
        grid = np.stack(np.meshgrid(offsets, offsets, offsets, indexing="ij"), -1).reshape(-1, 3)
        self.local_pieces = np.ascontiguousarray(
            centre[:, None, None]
            + grid[None, :, None] * half[:, None, None]
            + _BOX_CORNERS[None, None] * (half[:, None, None] / SPLIT + MARGIN_M)
        )
        boxes = np.flatnonzero(model.geom_type == mujoco.mjtGeom.mjGEOM_BOX)
        big = np.sort(model.geom_size[boxes], axis=1)[:, 1] >= MIN_OCCLUDER_HALF_M
        self.boxes = np.asarray(boxes[big], dtype=np.int64)

    def hidden_geoms(self, data: Any, scn: Any, vopt: Any, width: int, height: int) -> np.ndarray:
        """Ids of the mesh geoms that cannot appear in this render (empty when culling is not exact).

        ``scn.camera`` must hold this render's cameras (``mjv_updateCamera``).
        """
        model = self.model
        if (
            not self.meshes.size
            or scn.flags[mujoco.mjtRndFlag.mjRND_SHADOW]
            or scn.flags[mujoco.mjtRndFlag.mjRND_REFLECTION]
            or scn.stereo != mujoco.mjtStereo.mjSTEREO_NONE
            or scn.enabletransform
            or vopt.flags[mujoco.mjtVisFlag.mjVIS_TRANSPARENT]
        ):
            return np.zeros(0, dtype=np.int64)
        cam = mujoco.mjv_averageCamera(scn.camera[0], scn.camera[1])
        if cam.orthographic:
            return np.zeros(0, dtype=np.int64)
        # mjr_render: glFrustum(centre -/+ halfwidth, bottom, top, near, far), halfwidth from the aspect.
        halfwidth = 0.5 * width / height * (cam.frustum_top - cam.frustum_bottom)
        frustum = np.array(
            [
                cam.frustum_near,
                cam.frustum_far,
                cam.frustum_center - halfwidth,
                cam.frustum_center + halfwidth,
                cam.frustum_bottom,
                cam.frustum_top,
            ],
            dtype=np.float64,
        )
        return _hidden_kernel(
            self.meshes,
            self.local_corners,
            self.local_pieces,
            self.split,
            # Static geoms (the table) must be drawn for anything to be behind them.
            self.boxes if vopt.flags[mujoco.mjtVisFlag.mjVIS_STATIC] else self.boxes[:0],
            data.geom_xpos,
            data.geom_xmat,
            model.geom_size,
            model.geom_rgba,
            model.geom_matid,
            model.mat_rgba,
            model.geom_group,
            np.asarray(vopt.geomgroup, dtype=np.uint8),
            np.asarray(cam.pos, dtype=np.float64),
            np.asarray(cam.forward, dtype=np.float64),
            np.asarray(cam.up, dtype=np.float64),
            frustum,
        )


@numba.njit(cache=True)
def _drawn_opaque(geom, geom_rgba, geom_matid, mat_rgba, geom_group, groups):  # pragma: no cover - compiled
    """Drawn (enabled group) and fully opaque (alpha 1 on the geom and on its material, if any)."""
    group = min(max(geom_group[geom], 0), groups.shape[0] - 1)
    if groups[group] == 0 or geom_rgba[geom, 3] != 1.0:
        return False
    mat = geom_matid[geom]
    return mat < 0 or mat_rgba[mat, 3] == 1.0


@numba.njit(cache=True)
def _to_world(local, rot, pos):  # pragma: no cover - compiled
    """(8, 3) corners in a geom's frame -> world, with the geom's xmat (9,) and xpos (3,)."""
    world = np.empty((8, 3))
    for c in range(8):
        for i in range(3):
            world[c, i] = (
                pos[i]
                + rot[3 * i] * local[c, 0]
                + rot[3 * i + 1] * local[c, 1]
                + rot[3 * i + 2] * local[c, 2]
            )
    return world


@numba.njit(cache=True)
def _box_status(world, view, faces):  # pragma: no cover - compiled
    """For one box's (8, 3) world corners: (hidden, partly outside the frustum, partly beyond a face).

    ``view`` is (eye, axes, planes, occluder_depths); ``faces`` the occluder faces (normal, centre,
    axis_a, axis_b, half_a, half_b, eye_dist), as ``_hidden_kernel`` builds them.
    """
    eye, axes, planes, occluder_depths = view
    normal, centre, axis_a, axis_b, half_a, half_b, eye_dist = faces
    out = np.zeros(6, dtype=np.int64)
    depths = np.empty(8)
    for c in range(8):
        rx, ry, rz = world[c, 0] - eye[0], world[c, 1] - eye[1], world[c, 2] - eye[2]
        x = rx * axes[0, 0] + ry * axes[0, 1] + rz * axes[0, 2]
        y = rx * axes[1, 0] + ry * axes[1, 1] + rz * axes[1, 2]
        depth = rx * axes[2, 0] + ry * axes[2, 1] + rz * axes[2, 2]
        depths[c] = depth
        out[0] += depth < planes[0]
        out[1] += depth > planes[1]
        out[2] += x < planes[2] * depth
        out[3] += x > planes[3] * depth
        out[4] += y < planes[4] * depth
        out[5] += y > planes[5] * depth
    partly_outside = False
    for p in range(6):
        if out[p] == 8:
            return True, True, False
        if out[p] > 0:
            partly_outside = True
    partly_beyond = False
    for f in range(normal.shape[0]):
        behind = True  # every corner so far is beyond the face's plane and seen through the face
        for c in range(8):
            dist = 0.0
            for i in range(3):
                dist += (world[c, i] - centre[f, i]) * normal[f, i]
            if dist < -MARGIN_M:
                partly_beyond = True
            else:
                behind = False
            if not behind:
                continue
            # Where the segment eye -> corner crosses the face's plane, in the face's coordinates.
            t = eye_dist[f] / (eye_dist[f] - dist)
            if not occluder_depths[0] < t * depths[c] < occluder_depths[1]:
                behind = False  # the face is clipped (near or far plane) where this ray crosses it
                continue
            u = 0.0
            v = 0.0
            for i in range(3):
                hit = eye[i] + t * (world[c, i] - eye[i]) - centre[f, i]
                u += hit * axis_a[f, i]
                v += hit * axis_b[f, i]
            if abs(u) > half_a[f] or abs(v) > half_b[f]:
                behind = False
        if behind:
            return True, partly_outside, True
    return False, partly_outside, partly_beyond


@numba.njit(cache=True)
def _hidden_kernel(
    meshes,
    local_corners,
    local_pieces,
    split,
    boxes,
    geom_xpos,
    geom_xmat,
    geom_size,
    geom_rgba,
    geom_matid,
    mat_rgba,
    geom_group,
    groups,
    eye,
    forward,
    up,
    frustum,
):  # pragma: no cover - compiled
    """The ids in ``meshes`` that cannot be seen (see the module's docstring)."""
    # Eye frame of MuJoCo's look-at: forward, up made orthogonal to it, right = forward x up.
    axes = np.empty((3, 3))
    fwd = forward / np.sqrt(np.sum(forward * forward))
    right = np.cross(fwd, up)
    right = right / np.sqrt(np.sum(right * right))
    axes[0] = right
    axes[1] = np.cross(right, fwd)
    axes[2] = fwd
    # The frustum as depth bounds and slopes x/depth, y/depth at the near plane, grown by the slack.
    k = FRUSTUM_SLACK
    near = frustum[0]
    mid_x, half_x = 0.5 * (frustum[2] + frustum[3]), 0.5 * (frustum[3] - frustum[2])
    mid_y, half_y = 0.5 * (frustum[4] + frustum[5]), 0.5 * (frustum[5] - frustum[4])
    planes = np.array(
        [
            near / k,
            frustum[1] * k,
            (mid_x - k * half_x) / near,
            (mid_x + k * half_x) / near,
            (mid_y - k * half_y) / near,
            (mid_y + k * half_y) / near,
        ]
    )
    # An occluder face hides only where it is drawn: between the near and far planes, with margins.
    occluder_depths = np.array([near * k + MARGIN_M, frustum[1] / k])
    # Occluders: the faces of drawn, opaque boxes that the camera sees from the front, shrunk by the
    # margin (normal, centre, in-face axes a and b, their half-extents, the eye's distance to the plane).
    nmax = 6 * boxes.shape[0]
    normal, centre = np.empty((nmax, 3)), np.empty((nmax, 3))
    axis_a, axis_b = np.empty((nmax, 3)), np.empty((nmax, 3))
    half_a, half_b, eye_dist = np.empty(nmax), np.empty(nmax), np.empty(nmax)
    nf = 0
    for box in boxes:
        if not _drawn_opaque(box, geom_rgba, geom_matid, mat_rgba, geom_group, groups):
            continue
        for face in range(6):
            n_axis, a_axis, b_axis = _FACE_AXES[face]
            sign = 1.0 if face % 2 else -1.0
            ha, hb = geom_size[box, a_axis] - MARGIN_M, geom_size[box, b_axis] - MARGIN_M
            if ha <= 0 or hb <= 0:
                continue
            dist = 0.0
            for i in range(3):  # xmat is row-major: column j of the rotation is xmat[3 * i + j]
                normal[nf, i] = sign * geom_xmat[box, 3 * i + n_axis]
                centre[nf, i] = geom_xpos[box, i] + geom_size[box, n_axis] * normal[nf, i]
                axis_a[nf, i] = geom_xmat[box, 3 * i + a_axis]
                axis_b[nf, i] = geom_xmat[box, 3 * i + b_axis]
                dist += (eye[i] - centre[nf, i]) * normal[nf, i]
            if dist > MARGIN_M:  # the camera faces this side, clearly off its plane
                half_a[nf], half_b[nf], eye_dist[nf] = ha, hb, dist
                nf += 1
    normal, centre, axis_a, axis_b = normal[:nf], centre[:nf], axis_a[:nf], axis_b[:nf]
    half_a, half_b, eye_dist = half_a[:nf], half_b[:nf], eye_dist[:nf]

    view = (eye, axes, planes, occluder_depths)
    faces = (normal, centre, axis_a, axis_b, half_a, half_b, eye_dist)
    hidden = np.zeros(meshes.shape[0], dtype=np.bool_)
    for m in range(meshes.shape[0]):
        geom = meshes[m]
        # Only opaque meshes that would be drawn (transparent ones are drawn sorted by distance).
        if not _drawn_opaque(geom, geom_rgba, geom_matid, mat_rgba, geom_group, groups):
            continue
        rot, pos = geom_xmat[geom], geom_xpos[geom]
        gone, partly_outside, partly_beyond = _box_status(_to_world(local_corners[m], rot, pos), view, faces)
        if not gone and split[m] and partly_outside and partly_beyond:
            # Maybe hidden by the frustum and a face together: then every piece is hidden by one of them.
            gone = True
            for p in range(local_pieces.shape[1]):
                piece = _to_world(local_pieces[m, p], rot, pos)
                if not _box_status(piece, view, faces)[0]:
                    gone = False
                    break
        hidden[m] = gone
    return meshes[hidden]


@contextlib.contextmanager
def hidden_from_scene(model: Any, geom_ids: np.ndarray) -> Iterator[None]:
    """While inside, ``mjv_updateScene`` leaves these geoms out (alpha 0); alpha is restored after."""
    if not len(geom_ids):
        yield
        return
    saved = model.geom_rgba[geom_ids, 3].copy()
    model.geom_rgba[geom_ids, 3] = 0.0
    try:
        yield
    finally:
        model.geom_rgba[geom_ids, 3] = saved


def culler_for(ctx: Any, model: Any) -> SceneCuller:
    """The culler of a render context's model, built on first use and kept on the context."""
    culler = getattr(ctx, "_vla_razor_culler", None)
    if culler is None or culler.model is not model:
        culler = SceneCuller(model)
        ctx._vla_razor_culler = culler
    return culler
