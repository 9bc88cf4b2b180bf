"""Relabelling experts for DAgger: the scripted expert's action at any state, its phase read from the state.

A scripted expert (:mod:`.experts`) walks through phases and remembers where it is; a state visited by
another policy carries no such memory. A relabelling expert infers the phase afresh at every call from
privileged simulator state, then acts as the phase expert would in that phase:

- whether the hand holds the object: robosuite's own contact check (both finger pads on the object);
- where the object is relative to the hand, its grasp point and its rest height (an episode constant,
  read at reset: placements vary x, y and yaw, never the height);
- for a full pick-and-place, whether the object already lies in its own bin section (robosuite's check).

Phases, in the order they are tested (``PickPlaceExpert``'s, same gains and targets):

| state | action |
|---|---|
| released in its bin section (pick-and-place) | retract straight up, open |
| held, away from the place point | straight up to carrying height, then carry there, closed |
| held, over the place point | lower, closed; release (open) once low or the object touches down |
| held (grasp-and-lift, lift) | up to the lift height, closed |
| not held, hand at the grasp point | close |
| not held, fingers shut on nothing | back up over the object, open |
| not held, hand over the object, aligned, open | descend to the grasp point, open |
| otherwise | travel over the object (descending only part-way), align, open |

Only the pick-and-place family has one (``pick_place_*``, ``grasp_lift_*``, ``lift``): DAgger labels the
new task, and every new task of the shipped suites is in that family.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vla_razor.envs.experts import CLOSE, OPEN, TABLE_Z, PickPlaceExpert, make_expert, orientation_error
from vla_razor.envs.tasks import get_task
from vla_razor.errors import BadInputError

RELABELLED_EXPERTS = ("pick_place", "grasp_lift", "lift")
# Thresholds of the phase tests, in metres (the finger opening is the distance between the two fingers).
AT_GRASP_XY = 0.015  # hand over the grasp point, close enough to close
AT_GRASP_Z = 0.015
OVER_OBJECT_XY = 0.02  # aligned over the object: may descend (as PickPlaceExpert's phase 0 -> 1)
STILL_DESCENDING_XY = 0.03  # once below the hover height, a little drift does not send the hand back up
ALIGNED_YAW = 0.1  # rad
FINGERS_OPEN = 0.07  # opening above which the fingers count as open (fully open: about 0.08)
FINGERS_SHUT = 0.005  # opening below which closed fingers hold nothing
OVER_PLACE_XY = 0.03
PLACE_REACHED_Z = 0.015
TOUCHED_DOWN_Z = 0.005  # object within this of its rest height while held over the place point
RETRACT_Z = 0.12
HOVER_Z = 0.08


class PickPlaceRelabeller:
    """The action ``expert`` would take at the current state, whatever policy led there."""

    def __init__(self, task: str, expert: PickPlaceExpert) -> None:
        self.task = task
        self.expert = expert
        self.kind = str(get_task(task).expert)
        self.rest_z = float("nan")

    def reset(self, rs: Any, object_state: np.ndarray) -> None:
        """Record the episode's constants (the object's rest height) from the freshly reset scene."""
        self.rest_z = float(object_state[2])

    def _object(self, rs: Any) -> Any:
        return rs.cube if self.kind == "lift" else rs.objects[rs.object_id]

    def held(self, rs: Any) -> bool:
        return bool(rs._check_grasp(gripper=rs.robots[0].gripper, object_geoms=self._object(rs)))

    def placed(self, rs: Any, object_state: np.ndarray) -> bool:
        """The object lies in its own bin section (robosuite's test, without the hand-away part)."""
        return self.kind == "pick_place" and not rs.not_in_bin(np.asarray(object_state[:3]), rs.object_id)

    def label(self, rs: Any, proprio: np.ndarray, object_state: np.ndarray) -> np.ndarray:
        e = self.expert
        eef, quat = np.asarray(proprio[:3], np.float64), np.asarray(proprio[3:7], np.float64)
        state = np.asarray(object_state, np.float64)
        opening = float(proprio[7] - proprio[8])
        yaw = e.grasp_yaw(state[3:7])
        rest_grasp_z = max(self.rest_z + e.grasp_z_offset, TABLE_Z + e.min_grasp_height)
        carry_z = rest_grasp_z + e.lift_height
        held = self.held(rs)
        if not held and self.placed(rs, state):
            up = np.array([eef[0], eef[1], rest_grasp_z + e.release_height + RETRACT_Z])
            return e.move(eef, quat, up, OPEN, yaw)
        if held:
            return self._carry(eef, quat, state, yaw, rest_grasp_z, carry_z)
        return self._reach(eef, quat, state, yaw, opening)

    def _carry(
        self,
        eef: np.ndarray,
        quat: np.ndarray,
        state: np.ndarray,
        yaw: float,
        rest_grasp_z: float,
        carry_z: float,
    ) -> np.ndarray:
        e = self.expert
        if e.lift_only:
            return e.move(eef, quat, np.array([eef[0], eef[1], carry_z]), CLOSE, yaw)
        place = np.array([state[7], state[8], rest_grasp_z + e.release_height])
        if np.linalg.norm(place[:2] - eef[:2]) >= OVER_PLACE_XY:
            if eef[2] < carry_z - 0.03:  # straight up first, so the object clears the bin walls
                return e.move(eef, quat, np.array([eef[0], eef[1], carry_z]), CLOSE, yaw)
            return e.move(eef, quat, np.array([place[0], place[1], carry_z]), CLOSE, yaw)
        touched_down = state[2] <= self.rest_z + TOUCHED_DOWN_Z
        if eef[2] - place[2] > PLACE_REACHED_Z and not touched_down:
            return e.move(eef, quat, place, CLOSE, yaw)
        return e.move(eef, quat, place, OPEN, yaw)

    def _reach(
        self, eef: np.ndarray, quat: np.ndarray, state: np.ndarray, yaw: float, opening: float
    ) -> np.ndarray:
        e = self.expert
        grasp = e.grasp_point(state)
        xy_err = float(np.linalg.norm(grasp[:2] - eef[:2]))
        at_grasp = xy_err < AT_GRASP_XY and eef[2] - grasp[2] < AT_GRASP_Z
        if at_grasp and opening > FINGERS_SHUT:
            return e.move(eef, quat, grasp, CLOSE, yaw)
        hover = grasp + np.array([0.0, 0.0, HOVER_Z])
        if at_grasp:  # the fingers shut on nothing: back up over the object, opening them
            return e.move(eef, quat, hover, OPEN, yaw)
        yaw_err = float(np.linalg.norm(orientation_error(quat, yaw)))
        descending = eef[2] < hover[2] - 0.01
        aligned = xy_err < (STILL_DESCENDING_XY if descending else OVER_OBJECT_XY) and yaw_err < ALIGNED_YAW
        if aligned and opening > FINGERS_OPEN:
            return e.move(eef, quat, grasp, OPEN, yaw)
        # Travel over the object; descend only part-way on the way, so the fingers never sweep it.
        hover[2] = max(hover[2], eef[2] - 0.02)
        return e.move(eef, quat, hover, OPEN, yaw)


def make_relabeller(task: str) -> PickPlaceRelabeller:
    """The relabelling expert of ``task``; a one-line error for a task outside the pick-and-place family."""
    spec = get_task(task)
    if spec.expert not in RELABELLED_EXPERTS:
        raise BadInputError(
            f"task {task!r} has no relabelling expert (DAgger's labels); valid: the tasks whose expert is one "
            f"of {', '.join(RELABELLED_EXPERTS)} (pick_place_*, grasp_lift_*, lift)"
        )
    expert = make_expert(task)
    assert isinstance(expert, PickPlaceExpert)  # every expert of RELABELLED_EXPERTS is one
    return PickPlaceRelabeller(task, expert)
