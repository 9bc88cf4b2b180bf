"""Render profiles: what the cameras draw, by name. Physics is the same under every profile.

On a CPU, Mesa's llvmpipe pays for every triangle and for a fixed per-frame cost (primitives drawn at
the model's ``<quality>`` settings, the skybox, the read-back). Three quarters of a pick-and-place frame
is the Panda's visual meshes (about 170k faces with its mount and gripper), seen at 64x64 pixels.

- ``full``: the model as robosuite ships it (what pi0 v1 and the committed study were trained and
  evaluated on).
- ``fast``: render-only meshes above ``mesh_min_faces`` faces simplified to ``mesh_fraction`` of their
  faces (:mod:`vla_razor.envs.render_meshes`), no skybox, and coarser built-in primitives. Collision
  geoms, masses and inertias are untouched (``tests/envs/test_render_profiles.py`` checks the simulator
  state bit for bit on every task).

A policy records the profile it was trained on; evaluating it under another is refused unless asked
for. The fractions below were chosen by measurement: ``python benchmarks/render_profile.py`` sweeps them
and prints the image difference against ``full`` beside the speed.
"""

from __future__ import annotations

from dataclasses import dataclass

from vla_razor.errors import BadInputError


@dataclass(frozen=True)
class RenderProfile:
    """One named way of drawing the scene."""

    name: str
    # Fraction of its faces a render-only mesh keeps; None keeps meshes as shipped.
    mesh_fraction: float | None = None
    # Meshes at or below this many faces are left alone (the objects: 100-1000 faces, cheap, and what the
    # policy must recognise).
    mesh_min_faces: int = 1000
    # robosuite's sky texture, drawn behind everything (a fixed cost per frame).
    skybox: bool = True
    # MuJoCo's ``<quality>`` (numslices, numstacks, numquads) for built-in primitives; None: the model's.
    primitive_quality: tuple[int, int, int] | None = None

    def __post_init__(self) -> None:
        if self.mesh_fraction is not None and not 0.0 < self.mesh_fraction <= 1.0:
            raise BadInputError(
                f"render profile {self.name!r}: mesh_fraction={self.mesh_fraction} must be in (0, 1]"
            )


FULL = RenderProfile("full")
FAST = RenderProfile("fast", mesh_fraction=0.1, skybox=False, primitive_quality=(8, 4, 1))

RENDER_PROFILES: dict[str, RenderProfile] = {p.name: p for p in (FULL, FAST)}
DEFAULT_RENDER_PROFILE = FULL.name


def get_render_profile(name: str | RenderProfile) -> RenderProfile:
    """The profile called ``name`` (a profile passes through), or a one-line error listing the valid ones."""
    if isinstance(name, RenderProfile):
        return name
    try:
        return RENDER_PROFILES[str(name)]
    except KeyError:
        raise BadInputError(f"unknown render_profile {name!r}; valid: {', '.join(RENDER_PROFILES)}") from None
