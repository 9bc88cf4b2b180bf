"""Task-specific views of a robosuite env: privileged object state and success checks.

Each function takes the raw robosuite environment. Quaternions are xyzw (robosuite's convention for
observations); MuJoCo stores wxyz, hence the roll.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vla_razor.errors import BadInputError

# Grasp-and-lift succeeds when the object's bottom is this far above its resting height while grasped.
GRASP_LIFT_HEIGHT_M = 0.08


def _body_pose(rs: Any, body_id: int) -> np.ndarray:
    pos = np.asarray(rs.sim.data.body_xpos[body_id], dtype=np.float64)
    quat_xyzw = np.roll(np.asarray(rs.sim.data.body_xquat[body_id], dtype=np.float64), -1)
    return np.concatenate([pos, quat_xyzw])


def _active_pick_place_object(rs: Any) -> Any:
    return rs.objects[rs.object_id]


def pick_place_state(rs: Any) -> np.ndarray:
    """[object pos (3), object quat xyzw (4), target position in the goal bin (3)]."""
    obj = _active_pick_place_object(rs)
    pose = _body_pose(rs, rs.obj_body_id[obj.name])
    return np.concatenate([pose, rs.target_bin_placements[rs.object_id]])


def pick_place_success(rs: Any) -> bool:
    return bool(rs._check_success())


def grasp_lift_success(rs: Any) -> bool:
    """Object bottom at least GRASP_LIFT_HEIGHT_M above the bin floor and held by the gripper."""
    obj = _active_pick_place_object(rs)
    z = rs.sim.data.body_xpos[rs.obj_body_id[obj.name]][2]
    # The placement sampler rests the object's bottom exactly on bin1's reference height.
    bottom_height = z + obj.bottom_offset[2] - rs.bin1_pos[2]
    if bottom_height < GRASP_LIFT_HEIGHT_M:
        return False
    return bool(rs._check_grasp(gripper=rs.robots[0].gripper, object_geoms=obj))


def lift_state(rs: Any) -> np.ndarray:
    """[cube pos (3), cube quat xyzw (4)]."""
    return _body_pose(rs, rs.cube_body_id)


def stack_state(rs: Any) -> np.ndarray:
    """[cubeA (to pick) pos, quat (7), cubeB (base) pos, quat (7)]."""
    return np.concatenate([_body_pose(rs, rs.cubeA_body_id), _body_pose(rs, rs.cubeB_body_id)])


def door_state(rs: Any) -> np.ndarray:
    """[handle pos (3), door body pos (3), hinge angle (1), hinge axis anchor pos (3)]."""
    handle = np.asarray(rs.sim.data.site_xpos[rs.door_handle_site_id], dtype=np.float64)
    door = np.asarray(rs.sim.data.body_xpos[rs.object_body_ids["door"]], dtype=np.float64)
    hinge = np.array([rs.sim.data.qpos[rs.hinge_qpos_addr]], dtype=np.float64)
    hinge_joint = rs.sim.model.joint_name2id(rs.door.joints[0])
    anchor = np.asarray(rs.sim.data.xanchor[hinge_joint], dtype=np.float64)
    return np.concatenate([handle, door, hinge, anchor])


def nut_assembly_state(rs: Any) -> np.ndarray:
    """[nut pos (3), nut quat xyzw (4), nut handle pos (3), matching peg pos (3)].

    The active nut is robosuite's ``nut_id`` (single-nut mode); nut i belongs on peg i+1.
    """
    nut = rs.nuts[rs.nut_id]
    pose = _body_pose(rs, rs.obj_body_id[nut.name])
    handle = np.asarray(rs.sim.data.site_xpos[rs.object_site_ids[rs.nut_id]], dtype=np.float64)
    peg_body = (rs.peg1_body_id, rs.peg2_body_id)[rs.nut_id]
    peg = np.asarray(rs.sim.data.body_xpos[peg_body], dtype=np.float64)
    return np.concatenate([pose, handle, peg])


def robosuite_success(rs: Any) -> bool:
    return bool(rs._check_success())


def object_poses(rs: Any, names: tuple[str, ...]) -> np.ndarray:
    """[pos (3), quat xyzw (4)] of each named robosuite object, in order: the default object state of a
    task defined in a config file (``objects: [...]``)."""
    by_name = {obj.name: obj for obj in rs.model.mujoco_objects}
    missing = [n for n in names if n not in by_name]
    if missing:
        raise BadInputError(
            f"objects {missing} are not in {type(rs).__name__}; its objects: {', '.join(sorted(by_name))}"
        )
    ids = [rs.sim.model.body_name2id(by_name[n].root_body) for n in names]
    return np.concatenate([_body_pose(rs, i) for i in ids])
