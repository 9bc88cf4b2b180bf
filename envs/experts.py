"""Scripted experts on privileged state: proportional waypoint controllers.

Each expert walks through phases (above object, grasp, lift, carry, lower, release, retract), each a
Cartesian target for the end effector plus a gripper command. The action is the target error scaled to
OSC_POSE units and clipped to [-1, 1]; orientation is held pointing down, with the yaw turned so the
fingers close across the object's narrow side. Experts are deterministic given the observations and
keep only their phase and a step counter (plain attributes, so they pickle).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from vla_razor.errors import BadInputError

# OSC_POSE maps an action of 1 to 5 cm and 0.5 rad per policy step.
POS_SCALE_M = 0.05
ROT_SCALE_RAD = 0.5
OPEN, CLOSE = -1.0, 1.0
# The Panda's home end-effector orientation: pointing straight down, site x axis along world +y.
# Expert yaws are relative to it.
R_DOWN = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, -1.0]])
# Height of the bin floors and table tops (robosuite places all of these at z = 0.8).
TABLE_Z = 0.8


def quat_xyzw_to_mat(q: np.ndarray) -> np.ndarray:
    x, y, z, w = (float(v) for v in q)
    n = math.sqrt(x * x + y * y + z * z + w * w) or 1.0
    x, y, z, w = x / n, y / n, z / n, w / n
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def rotvec(r: np.ndarray) -> np.ndarray:
    """Axis-angle vector of a rotation matrix."""
    cos = np.clip((np.trace(r) - 1.0) / 2.0, -1.0, 1.0)
    angle = math.acos(cos)
    if angle < 1e-6:
        return np.zeros(3)
    axis = np.array([r[2, 1] - r[1, 2], r[0, 2] - r[2, 0], r[1, 0] - r[0, 1]])
    norm = np.linalg.norm(axis)
    if norm < 1e-6:  # angle close to pi: take the axis from the symmetric part
        axis = np.sqrt(np.clip((np.diag(r) + 1.0) / 2.0, 0.0, None))
        norm = np.linalg.norm(axis)
    return axis / norm * angle


def yaw_of(q_xyzw: np.ndarray) -> float:
    r = quat_xyzw_to_mat(q_xyzw)
    return math.atan2(r[1, 0], r[0, 0])


def wrap_to_period(angle: float, period: float) -> float:
    """The equivalent of ``angle`` (under a ``period``-fold symmetry) closest to zero."""
    return (angle + period / 2.0) % period - period / 2.0


def _rz(yaw: float) -> np.ndarray:
    c, s = math.cos(yaw), math.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def orientation_error(quat: np.ndarray, yaw: float) -> np.ndarray:
    """Axis-angle error from the hand's orientation ``quat`` (xyzw) to pointing down turned by ``yaw``."""
    return rotvec(_rz(yaw) @ R_DOWN @ quat_xyzw_to_mat(quat).T)


class Expert:
    """Base class: phase bookkeeping and the proportional move-to-target action."""

    pos_gain = 1.5
    rot_gain = 1.0

    def __init__(self) -> None:
        self.phase = 0
        self.counter = 0
        self.finger_motion = 0.0
        self.memory: dict[str, np.ndarray] = {}

    def reset(self) -> None:
        self.phase = 0
        self.counter = 0
        self.finger_motion = 0.0
        self.memory = {}

    def grasp_settled(self, min_steps: int = 2, max_steps: int = 12) -> bool:
        """The fingers have closed on something (stopped moving) or the time budget is spent."""
        return self.counter >= max_steps or (self.counter >= min_steps and self.finger_motion < 0.0015)

    def _next(self) -> None:
        self.phase += 1
        self.counter = 0

    def move(
        self, eef: np.ndarray, quat: np.ndarray, target: np.ndarray, gripper: float, yaw: float = 0.0
    ) -> np.ndarray:
        action = np.zeros(7)
        action[:3] = np.clip(self.pos_gain * (target - eef) / POS_SCALE_M, -1.0, 1.0)
        err = orientation_error(quat, yaw)
        action[3:6] = np.clip(self.rot_gain * err / ROT_SCALE_RAD, -1.0, 1.0)
        action[6] = gripper
        return action.astype(np.float32)

    def act(self, obs: dict) -> np.ndarray:
        proprio = np.asarray(obs["proprio"], dtype=np.float64)
        # Finger opening and how much it changed since the last step: a grasp is done when it stalls.
        opening = float(proprio[7] - proprio[8])
        self.finger_motion = abs(opening - self.memory.get("opening", np.array(opening)).item())
        self.memory["opening"] = np.array(opening)
        action = self._act(proprio[:3], proprio[3:7], np.asarray(obs["object_state"], dtype=np.float64))
        self.counter += 1
        return action

    def _act(self, eef: np.ndarray, quat: np.ndarray, state: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class PickPlaceExpert(Expert):
    """Pick an object and (unless ``lift_only``) place it at a target position, then retract.

    ``object_state`` layout: [pos (3), quat xyzw (4), target (3) ...]. Subclasses override the target.
    """

    def __init__(
        self,
        *,
        lift_only: bool = False,
        yaw_period: float | None = math.pi,
        yaw_offset: float = 0.0,
        lift_height: float = 0.15,
        release_height: float = 0.03,
        min_grasp_height: float = 0.02,
        grasp_z_offset: float = 0.0,
    ) -> None:
        super().__init__()
        self.lift_only = lift_only
        self.yaw_period = yaw_period
        self.yaw_offset = yaw_offset
        self.lift_height = lift_height
        self.release_height = release_height
        self.min_grasp_height = min_grasp_height
        self.grasp_z_offset = grasp_z_offset

    def grasp_yaw(self, obj_quat: np.ndarray) -> float:
        if self.yaw_period is None:
            return 0.0
        return wrap_to_period(yaw_of(obj_quat) + self.yaw_offset, self.yaw_period)

    def grasp_point(self, state: np.ndarray) -> np.ndarray:
        pos = state[:3].copy()
        pos[2] = max(pos[2] + self.grasp_z_offset, TABLE_Z + self.min_grasp_height)
        return pos

    def _place_point(self, state: np.ndarray, grasp_z: float) -> np.ndarray:
        """Where the end effector releases: above the target, with the object just clear of the floor."""
        target = state[7:10].copy()
        target[2] = grasp_z + self.release_height
        return target

    def _act(self, eef: np.ndarray, quat: np.ndarray, state: np.ndarray) -> np.ndarray:
        if self.phase == 0:  # above the object, open, aligned
            grasp = self.grasp_point(state)
            yaw = self.grasp_yaw(state[3:7])
            self.memory["yaw"] = np.array(yaw)
            hover = grasp + np.array([0.0, 0.0, 0.08])
            xy_err = np.linalg.norm(hover[:2] - eef[:2])
            yaw_err = np.linalg.norm(orientation_error(quat, yaw))
            if xy_err < 0.02 and yaw_err < 0.1:
                self._next()
            else:
                # Descend only part-way while travelling so the fingers never sweep the object.
                hover[2] = max(hover[2], eef[2] - 0.02)
                return self.move(eef, quat, hover, OPEN, yaw)
        yaw = float(self.memory.get("yaw", 0.0))
        if self.phase == 1:  # down to the grasp point
            grasp = self.grasp_point(state)
            if np.linalg.norm(grasp - eef) < 0.012 or self.counter > 15:
                self.memory["grasp"] = grasp
                self._next()
            else:
                return self.move(eef, quat, grasp, OPEN, yaw)
        if self.phase == 2:  # close
            if self.grasp_settled():
                self._next()
            else:
                return self.move(eef, quat, self.memory["grasp"], CLOSE, yaw)
        if self.phase == 3:  # lift
            lift = self.memory["grasp"] + np.array([0.0, 0.0, self.lift_height])
            if self.lift_only or eef[2] < lift[2] - 0.03:
                return self.move(eef, quat, lift, CLOSE, yaw)
            self._next()
        place = self._place_point(state, float(self.memory["grasp"][2]))
        if self.phase == 4:  # carry at height
            carry = place.copy()
            carry[2] = self.memory["grasp"][2] + self.lift_height
            if np.linalg.norm(carry[:2] - eef[:2]) < 0.03:
                self._next()
            else:
                return self.move(eef, quat, carry, CLOSE, yaw)
        if self.phase == 5:  # lower
            if abs(place[2] - eef[2]) < 0.015 or self.counter > 12:
                self._next()
            else:
                return self.move(eef, quat, place, CLOSE, yaw)
        if self.phase == 6:  # release
            if self.counter >= 2:
                self.memory["release"] = eef.copy()
                self._next()
            else:
                return self.move(eef, quat, place, OPEN, yaw)
        # retract straight up, far enough for robosuite's "gripper away from the object" check
        up = self.memory["release"] + np.array([0.0, 0.0, 0.12])
        return self.move(eef, quat, up, OPEN, yaw)


class StackExpert(PickPlaceExpert):
    """Pick cube A and put it on cube B. object_state: [A pos, A quat, B pos, B quat]."""

    def __init__(self) -> None:
        super().__init__(yaw_period=math.pi / 2, lift_height=0.10, release_height=0.0)

    def _place_point(self, state: np.ndarray, grasp_z: float) -> np.ndarray:
        target = state[7:10].copy()
        # cube B half height 0.025 + cube A half height 0.02, plus a small drop
        target[2] = state[9] + 0.025 + 0.02 + 0.012
        return target


class DoorExpert(Expert):
    """Hook the fingers behind the door's handle bar and push them out along the door's normal.

    object_state: [handle (3), door body (3), hinge angle (1), hinge anchor (3)].

    The handle is a bar 3 cm thick standing 6 cm off the panel. A real grasp cannot work: the fingers
    would have to close across the bar's thickness (the door normal), and the Panda hand is 20 cm wide
    along that axis, so it hits the panel. Instead the closed fingers, turned so the hand's thin side
    faces the panel, drop into the gap between bar and panel and pull the bar outwards. Every target
    is recomputed from the door's current pose, so the pull follows the arc around the hinge, and the
    hook is redone if the fingers lose the bar.
    """

    def __init__(
        self,
        hover: float = 0.08,
        behind: float = 0.027,
        below: float = 0.005,
        lead: float = 0.03,
    ) -> None:
        super().__init__()
        self.hover = hover  # height above the hook point at which to line up before descending
        # eef offset behind the bar's centre line: half the bar (1.5 cm) + half a finger (1.1 cm) + slack
        self.behind = behind
        self.below = below  # a little under the bar's centre, so the fingertips cover its full height
        self.lead = lead  # how far past the bar the pull target lies (sets the pulling force)

    @staticmethod
    def _door_frame(state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Unit vectors in the table plane: along the panel (away from the hinge), and the panel's
        normal on the handle side (the direction the handle moves as the door opens)."""
        handle, door, anchor = state[:3], state[3:6], state[7:10]
        along = door[:2] - anchor[:2]
        along = along / (np.linalg.norm(along) + 1e-9)
        normal = np.array([-along[1], along[0]])
        if np.dot(normal, handle[:2] - door[:2]) < 0:
            normal = -normal
        return along, normal

    def _act(self, eef: np.ndarray, quat: np.ndarray, state: np.ndarray) -> np.ndarray:
        along, normal = self._door_frame(state)
        # Fingers side by side along the panel: the hand's thin side (6.4 cm) then fits the 6 cm gap.
        yaw = math.atan2(along[1], along[0]) + math.pi / 2
        hook = state[:3].copy()
        hook[:2] -= self.behind * normal
        hook[2] -= self.below
        if self.phase == 0:  # above the gap behind the bar, fingers closed into one hook
            above = hook + np.array([0.0, 0.0, self.hover])
            if np.linalg.norm(above[:2] - eef[:2]) < 0.005 and abs(above[2] - eef[2]) < 0.02:
                self._next()
            else:
                return self.move(eef, quat, above, CLOSE, yaw)
        if self.phase == 1:  # straight down into the gap
            if abs(hook[2] - eef[2]) < 0.008 or self.counter > 10:
                self._next()
            else:
                return self.move(eef, quat, hook, CLOSE, yaw)
        off = eef - hook
        if abs(off[2]) > 0.03 or np.dot(off[:2], normal) > 0.02 or abs(np.dot(off[:2], along)) > 0.04:
            # The fingers came off the bar (over its top or past its end): back up and hook again.
            self.phase, self.counter = 0, 0
            return self.move(eef, quat, eef + np.array([0.0, 0.0, 0.05]), CLOSE, yaw)
        target = hook.copy()
        target[:2] += self.lead * normal
        return self.move(eef, quat, target, CLOSE, yaw)


class NutAssemblyExpert(Expert):
    """Grasp a nut by its handle, lift it over the peg top, carry it over its peg and lower it on.

    object_state: [nut pos (3), nut quat xyzw (4), handle pos (3), peg pos (3)].

    The nut's ring hangs 6 cm off the grasped handle, so where the hand must go depends on which way
    the handle points. With the handle pointing away from the robot the hand would have to reach past
    the peg, beyond the arm's workspace at carrying height; the wrist therefore turns the nut during the
    carry so that the handle points back towards the robot, as far as the wrist's range allows.
    """

    def __init__(
        self,
        hover: float = 0.06,
        grasp_dz: float = 0.004,
        carry_z: float = 1.0,
        place_z: float = 0.86,
        max_turn: float = 2.5,
        max_yaw: float = 1.9,
    ) -> None:
        super().__init__()
        self.hover = hover
        # Just above the handle's centre: the fingertips reach 9 mm below the end effector and the
        # handle's bottom lies on the table, so grasping at its centre drags the fingers over the table.
        self.grasp_dz = grasp_dz
        # Nut centre height while carrying: its bottom (1 cm below) clears the peg tops (z = 0.95).
        self.carry_z = carry_z
        # Lower until the nut centre is this low; robosuite's success needs it below 0.87.
        self.place_z = place_z
        # Below pi, so the shortest rotation the move() command takes is the intended one.
        self.max_turn = max_turn
        # Yaw range (relative to the home orientation) the wrist holds reliably while the arm is stretched.
        self.max_yaw = max_yaw

    def _aligned(self, quat: np.ndarray, yaw: float, tol: float) -> bool:
        return float(np.linalg.norm(orientation_error(quat, yaw))) < tol

    def _start_over(self, eef: np.ndarray, quat: np.ndarray, yaw: float) -> np.ndarray:
        self.phase, self.counter = 0, 0
        return self.move(eef, quat, eef + np.array([0.0, 0.0, 0.05]), OPEN, yaw)

    def _act(self, eef: np.ndarray, quat: np.ndarray, state: np.ndarray) -> np.ndarray:
        nut, nut_quat, handle, peg = state[:3], state[3:7], state[7:10], state[10:13]
        grasp = handle + np.array([0.0, 0.0, self.grasp_dz])
        if self.phase == 0:  # above the handle, fingers open and across it
            # The handle runs along the nut's x axis and the fingers close along the hand's x axis.
            yaw = wrap_to_period(yaw_of(nut_quat), math.pi)
            self.memory["yaw"] = np.array(yaw)
            above = grasp + np.array([0.0, 0.0, self.hover])
            # Also wait for the fingers to be fully open again after a failed grasp.
            opened = float(self.memory["opening"]) > 0.07
            if np.linalg.norm(above[:2] - eef[:2]) < 0.008 and self._aligned(quat, yaw, 0.08) and opened:
                self._next()
            else:
                above[2] = max(above[2], eef[2] - 0.02)
                return self.move(eef, quat, above, OPEN, yaw)
        yaw = float(self.memory["yaw"])
        if self.phase == 1:  # down to the handle
            if np.linalg.norm(grasp - eef) < 0.008 or self.counter > 12:
                self._next()
            else:
                return self.move(eef, quat, grasp, OPEN, yaw)
        if self.phase == 2:  # close; the gripper ramps, so a still finger in the first steps means nothing
            if not self.grasp_settled(min_steps=5):
                return self.move(eef, quat, grasp, CLOSE, yaw)
            turn = wrap_to_period(math.pi - yaw_of(nut_quat), 2 * math.pi)  # handle -> pointing at -x
            carry_yaw = yaw + float(np.clip(turn, -self.max_turn, self.max_turn))
            self.memory["carry_yaw"] = np.array(float(np.clip(carry_yaw, -self.max_yaw, self.max_yaw)))
            self._next()
        if self.phase in (3, 4) and np.linalg.norm(handle - eef) > 0.03:  # the nut slipped out
            return self._start_over(eef, quat, yaw)
        # Nut centre relative to the hand: constant while held, so it says where the hand must go.
        offset = nut - eef
        if self.phase == 3:  # straight up
            if eef[2] < self.carry_z - 0.02:
                return self.move(eef, quat, np.array([eef[0], eef[1], self.carry_z]), CLOSE, yaw)
            self._next()
        yaw = float(self.memory["carry_yaw"])
        over_peg = peg - offset
        if self.phase == 4:  # over the peg, turning the nut on the way
            if np.linalg.norm(nut[:2] - peg[:2]) > 0.008 or not self._aligned(quat, yaw, 0.1):
                return self.move(eef, quat, np.array([over_peg[0], over_peg[1], self.carry_z]), CLOSE, yaw)
            self._next()
        if self.phase == 5:  # lower the ring around the peg
            if nut[2] > self.place_z + 0.005 and self.counter <= 20:
                return self.move(
                    eef, quat, np.array([over_peg[0], over_peg[1], self.place_z - offset[2]]), CLOSE, yaw
                )
            self._next()
        # let go and move up, away from the nut
        return self.move(eef, quat, eef + np.array([0.0, 0.0, 0.05]), OPEN, yaw)


# Per object: yaw symmetry (None: round, any yaw works) and how far above the body centre to grasp so
# the palm clears the top of tall objects (milk, cereal are taller than the fingers are long).
_OBJECT_GRASP: dict[str, dict[str, float | None]] = {
    "can": {"yaw_period": None, "grasp_z_offset": 0.0},
    "bread": {"yaw_period": math.pi, "grasp_z_offset": 0.0},
    "milk": {"yaw_period": math.pi, "grasp_z_offset": 0.035},
    "cereal": {"yaw_period": math.pi, "grasp_z_offset": 0.05},
}

EXPERT_FACTORIES: dict[str, Callable[[str], Expert]] = {
    "pick_place": lambda obj: PickPlaceExpert(**_OBJECT_GRASP[obj]),  # type: ignore[arg-type]
    "grasp_lift": lambda obj: PickPlaceExpert(lift_only=True, **_OBJECT_GRASP[obj]),  # type: ignore[arg-type]
    "lift": lambda _: PickPlaceExpert(lift_only=True, yaw_period=math.pi / 2, lift_height=0.10),
    "stack": lambda _: StackExpert(),
    "door": lambda _: DoorExpert(),
    "nut_assembly": lambda _: NutAssemblyExpert(),
}


def make_expert(task: str) -> Expert:
    """A fresh scripted expert for ``task`` (one per env: it keeps its phase)."""
    from vla_razor.envs.tasks import get_task  # late import: tasks does not depend on experts

    spec = get_task(task)
    if spec.expert is None:
        raise BadInputError(
            f"task {task!r} has no scripted expert; give its task config one "
            "(define.expert: {_target_: your.module.YourExpert}) to record demos or roll it out"
        )
    if callable(spec.expert):  # a task defined in a config file: its own expert factory
        return spec.expert()
    obj = spec.name.rsplit("_", 1)[-1]
    return EXPERT_FACTORIES[spec.expert](obj)
