"""A user's own task code, outside the library: plugged into a task definition through ``_target_``."""

from __future__ import annotations

from typing import Any


def cube_above_table(rs: Any, height: float) -> bool:
    """Success of the Lift scene's cube: its centre at least ``height`` metres above the table top."""
    cube_z = rs.sim.data.body_xpos[rs.cube_body_id][2]
    return bool(cube_z - rs.model.mujoco_arena.table_offset[2] > height)
