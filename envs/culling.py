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
Where numba is not installed (the simulator bundle of ``benchmarks/sim_bundle.py`` leaves it out),
``_hidden_numpy`` decides instead: the same float operations in the same order, vectorised, so the same
geoms (``tests/envs/test_culling_numpy.py`` compares both on real scenes); about 1 ms per render here.

Measured (``benchmarks/env_throughput.py --profile``, AMD EPYC, 2 cores; ms per step, draw + read-back
of both policy cameras): lift 20.3 -> 9.5, grasp_lift_bread 25.0 -> 18.0. Of the ~170k triangles,
agentview still draws ~100-140k (the arm and pedestal it sees) and the eye-in-hand camera ~12-47k.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any

import mujoco
import numpy as np

try:
    from numba import njit
except ImportError:  # no numba (benchmarks/sim_bundle.py's bundle): _hidden_numpy decides instead
    njit = None

# The 8 corners of a unit box, as signs of the half-sizes.
_BOX_CORNERS = np.array([[x, y, z] for x in (-1.0, 1.0) for y in (-1.0, 1.0) for z in (-1.0, 1.0)])
MARGIN_M = 0.01  # bounding boxes grow, occluder faces shrink, by this much
FRUSTUM_SLACK = 1.02  # the frustum grows by 2% in every direction
MIN_OCCLUDER_HALF_M = 0.05  # box faces smaller than 10 cm x 10 cm are not worth testing
SPLIT, SPLIT_MIN_TRIANGLES = 4, 5000  # big meshes are also tested in SPLIT^3 pieces
# Faces of a box (-x, +x, -y, +y, -z, +z): the axis normal to the face and the two in-face axes.
_FACE_AXES = ((0, 1, 2), (0, 1, 2), (1, 0, 2), (1, 0, 2), (2, 0, 1), (2, 0, 1))


def _compiled(func: Any) -> Any:
    """``func`` compiled by numba (cached on disk) where numba is importable, else left as it is."""
    return func if njit is None else njit(cache=True)(func)


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
        return _hidden(
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


@_compiled
def _frustum_bounds(frustum):  # pragma: no cover - compiled
    """The frustum as depth bounds and slopes x/depth, y/depth at the near plane, grown by the slack;
    and the depths between which an occluder face hides anything (it hides only where it is drawn:
    between the near and far planes, with margins). Shared by the kernel and its numpy twin."""
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
    return planes, np.array([near * k + MARGIN_M, frustum[1] / k])


@_compiled
def _drawn_opaque(geom, geom_rgba, geom_matid, mat_rgba, geom_group, groups):  # pragma: no cover - compiled
    """Drawn (enabled group) and fully opaque (alpha 1 on the geom and on its material, if any)."""
    group = min(max(geom_group[geom], 0), groups.shape[0] - 1)
    if groups[group] == 0 or geom_rgba[geom, 3] != 1.0:
        return False
    mat = geom_matid[geom]
    return mat < 0 or mat_rgba[mat, 3] == 1.0


@_compiled
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


@_compiled
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


@_compiled
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
    planes, occluder_depths = _frustum_bounds(frustum)
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


def _drawn_opaque_numpy(
    geoms: np.ndarray,
    geom_rgba: np.ndarray,
    geom_matid: np.ndarray,
    mat_rgba: np.ndarray,
    geom_group: np.ndarray,
    groups: np.ndarray,
) -> np.ndarray:
    """:func:`_drawn_opaque` for an array of geoms."""
    group = np.clip(geom_group[geoms], 0, groups.shape[0] - 1)
    mat = geom_matid[geoms]
    mat_alpha = mat_rgba[np.maximum(mat, 0), 3] if mat_rgba.shape[0] else np.ones(len(geoms))
    return (groups[group] != 0) & (geom_rgba[geoms, 3] == 1.0) & ((mat < 0) | (mat_alpha == 1.0))


def _to_world_numpy(local: np.ndarray, rot: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """:func:`_to_world` for boxes (..., 8, 3) with rotations (..., 9) and positions (..., 3), in the
    same order of operations."""
    world = np.empty(local.shape)
    for i in range(3):
        world[..., i] = (
            pos[..., None, i]
            + rot[..., None, 3 * i] * local[..., 0]
            + rot[..., None, 3 * i + 1] * local[..., 1]
            + rot[..., None, 3 * i + 2] * local[..., 2]
        )
    return world


def _box_status_numpy(
    world: np.ndarray, view: tuple[np.ndarray, ...], faces: tuple[np.ndarray, ...]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`_box_status` for boxes (B, 8, 3): (hidden, partly outside, partly beyond a face), each (B,).

    The same float operations in the same order, per corner and face; only the early exits differ,
    and they never change the answer (hidden by any test, or partly so).
    """
    eye, axes, planes, occluder_depths = view
    normal, centre, axis_a, axis_b, half_a, half_b, eye_dist = faces
    rx, ry, rz = world[..., 0] - eye[0], world[..., 1] - eye[1], world[..., 2] - eye[2]
    x = rx * axes[0, 0] + ry * axes[0, 1] + rz * axes[0, 2]
    y = rx * axes[1, 0] + ry * axes[1, 1] + rz * axes[1, 2]
    depth = rx * axes[2, 0] + ry * axes[2, 1] + rz * axes[2, 2]
    out = np.stack(
        [
            depth < planes[0],
            depth > planes[1],
            x < planes[2] * depth,
            x > planes[3] * depth,
            y < planes[4] * depth,
            y > planes[5] * depth,
        ],
        axis=1,
    ).sum(axis=2)  # (B, 6): corners outside each plane
    outside = (out == 8).any(axis=1)
    partly_outside = (out > 0).any(axis=1)
    # (N, F, 8) signed distances beyond each face's plane, of the corners of the N boxes still in view.
    rest = np.flatnonzero(~outside)
    world, depth = world[rest], depth[rest]
    dist = (world[:, None, :, 0] - centre[None, :, None, 0]) * normal[None, :, None, 0]
    dist = dist + (world[:, None, :, 1] - centre[None, :, None, 1]) * normal[None, :, None, 1]
    dist = dist + (world[:, None, :, 2] - centre[None, :, None, 2]) * normal[None, :, None, 2]
    beyond = dist < -MARGIN_M
    partly_beyond = np.zeros(outside.shape, dtype=np.bool_)
    partly_beyond[rest] = beyond.any(axis=(1, 2))
    # A face can hide a box only if every corner is beyond it: the rest of the test for those pairs only.
    box, face = np.nonzero(beyond.all(axis=2))
    shadowed = np.zeros(outside.shape, dtype=np.bool_)
    if box.size:
        d, ed = dist[box, face], eye_dist[face, None]  # (K, 8), (K, 1)
        with np.errstate(divide="ignore", invalid="ignore"):
            t = ed / (ed - d)
            td = t * depth[box]
            hit = eye + t[..., None] * (world[box] - eye) - centre[face, None]  # (K, 8, 3)
        seen = (occluder_depths[0] < td) & (td < occluder_depths[1])
        a, b = axis_a[face, None], axis_b[face, None]
        u = hit[..., 0] * a[..., 0] + hit[..., 1] * a[..., 1] + hit[..., 2] * a[..., 2]
        v = hit[..., 0] * b[..., 0] + hit[..., 1] * b[..., 1] + hit[..., 2] * b[..., 2]
        inside = (np.abs(u) <= half_a[face, None]) & (np.abs(v) <= half_b[face, None])
        shadowed[rest[box[(seen & inside).all(axis=1)]]] = True
    return outside | shadowed, partly_outside, partly_beyond


def _hidden_numpy(
    meshes: np.ndarray,
    local_corners: np.ndarray,
    local_pieces: np.ndarray,
    split: np.ndarray,
    boxes: np.ndarray,
    geom_xpos: np.ndarray,
    geom_xmat: np.ndarray,
    geom_size: np.ndarray,
    geom_rgba: np.ndarray,
    geom_matid: np.ndarray,
    mat_rgba: np.ndarray,
    geom_group: np.ndarray,
    groups: np.ndarray,
    eye: np.ndarray,
    forward: np.ndarray,
    up: np.ndarray,
    frustum: np.ndarray,
) -> np.ndarray:
    """:func:`_hidden_kernel` in numpy, for where numba is not installed: the same ids, from the same
    float operations in the same order (``tests/envs/test_culling_numpy.py``), vectorised over meshes,
    corners and faces. Slower than the kernel, but far cheaper than drawing what it culls."""

    # Scalar arithmetic as the kernel's: its np.sum over 3 values adds them left to right, its np.cross
    # is a1 * b2 - a2 * b1 (and so on) like numpy's.
    def cross(a: tuple[float, ...], b: tuple[float, ...]) -> tuple[float, float, float]:
        return (a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0])

    f0, f1, f2 = (float(value) for value in forward)
    norm = math.sqrt(f0 * f0 + f1 * f1 + f2 * f2)
    fwd = (f0 / norm, f1 / norm, f2 / norm)
    r0, r1, r2 = cross(fwd, tuple(float(value) for value in up))
    norm = math.sqrt(r0 * r0 + r1 * r1 + r2 * r2)
    right = (r0 / norm, r1 / norm, r2 / norm)
    axes = np.array([right, cross(right, fwd), fwd])
    planes, occluder_depths = _frustum_bounds(frustum)
    # Occluder faces, in the kernel's order (boxes, then faces -x, +x, -y, +y, -z, +z).
    opaque = boxes[_drawn_opaque_numpy(boxes, geom_rgba, geom_matid, mat_rgba, geom_group, groups)]
    rot, pos, size = geom_xmat[opaque], geom_xpos[opaque], geom_size[opaque]
    n_axis, a_axis, b_axis = (np.array(column) for column in zip(*_FACE_AXES, strict=True))
    sign = np.array([-1.0, 1.0] * 3)
    # (boxes, 6, 3): column j of the rotation is xmat[3 * i + j].
    normal = sign[None, :, None] * rot[:, 3 * np.arange(3)[None] + n_axis[:, None]]
    centre = pos[:, None] + size[:, n_axis, None] * normal
    offset = (eye - centre) * normal
    dist = offset[..., 0] + offset[..., 1] + offset[..., 2]
    half_a, half_b = size[:, a_axis] - MARGIN_M, size[:, b_axis] - MARGIN_M
    use = (half_a > 0) & (half_b > 0) & (dist > MARGIN_M)  # the camera faces this side, off its plane
    axis_a = rot[:, 3 * np.arange(3)[None] + a_axis[:, None]]
    axis_b = rot[:, 3 * np.arange(3)[None] + b_axis[:, None]]
    faces = (normal[use], centre[use], axis_a[use], axis_b[use], half_a[use], half_b[use], dist[use])
    view = (eye, axes, planes, occluder_depths)
    drawn = _drawn_opaque_numpy(meshes, geom_rgba, geom_matid, mat_rgba, geom_group, groups)
    index = np.flatnonzero(drawn)
    rot, pos = geom_xmat[meshes[index]], geom_xpos[meshes[index]]
    gone, partly_outside, partly_beyond = _box_status_numpy(
        _to_world_numpy(local_corners[index], rot, pos), view, faces
    )
    # Maybe hidden by the frustum and a face together: then every piece is hidden by one of them.
    retry = ~gone & split[index] & partly_outside & partly_beyond
    if retry.any():
        pieces = local_pieces[index[retry]]  # (R, P, 8, 3)
        count = pieces.shape[1]
        world = _to_world_numpy(pieces, rot[retry, None], pos[retry, None]).reshape(-1, 8, 3)
        gone[retry] = _box_status_numpy(world, view, faces)[0].reshape(-1, count).all(axis=1)
    hidden = np.zeros(meshes.shape[0], dtype=np.bool_)
    hidden[index] = gone
    return meshes[hidden]


# The decision used by SceneCuller: the compiled kernel, or its numpy twin without numba.
_hidden = _hidden_numpy if njit is None else _hidden_kernel
NUMBA = njit is not None


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
