"""One control step of robosuite, bit-identical, without the work our env never uses.

robosuite's ``env.step`` runs, for each of its physics substeps (50 at our 10 Hz control rate):
``mj_step1``, the robot's controller, ``mj_step2``, then an update of every observable; after the
substeps it computes the reward and assembles its observation dict. Our env builds its own observation
from the simulator state (``robosuite_env.RobosuiteTaskEnv._observation``), so robosuite's observables
and observation dict are pure overhead, and most of the controller's time is Python plumbing around a
few small matrix operations: name-to-id lookups, property chains, an action-dimension assert that
rebuilds the action limits (three times per substep), four redundant Jacobian evaluations, and a gripper
command that cannot change between policy steps.

:class:`FastControlLoop` replays exactly robosuite's arithmetic for the one controller configuration we
use (Panda, BASIC composite controller: OSC_POSE with fixed impedance and delta input in the base frame,
no interpolators, plus the gripper's SimpleGrip), calling the same numpy expressions and the same
numba-compiled robosuite kernels (``opspace_matrices``, ``orientation_error``, ``nullspace_torques``) on
arrays of the same shapes and memory layouts, so every float it produces is the one robosuite produces.
It does not evaluate robosuite's observables. The policy substep (the first of each control step, where
the goal is set and robosuite's bookkeeping buffers are pushed) is robosuite's own code.

``tests/envs/test_fast_step_identity.py`` checks states, images, rewards and successes against
robosuite's own step, bit for bit. Any other configuration falls back to robosuite's ``step``
(:func:`unsupported_reason` says why).

Measured (AMD EPYC, 2 cores, other jobs running; ``benchmarks/env_throughput.py``): without cameras our
env steps 2.07x (lift) and 1.83x (grasp_lift_bread) faster than with robosuite's ``step``, side by side.
Per control step (``--profile``, lift): controller 14.0 -> 5.1 ms (49 streamlined arm substeps at about
45-85 us instead of 140-280 us, plus robosuite's policy substep), observables 0.5 -> 0 ms, mj_step1/2
unchanged (about 2.7 ms). Skipping the observables alone is worth about 1%; the controller is the rest.
"""

from __future__ import annotations

from typing import Any

import mujoco
import numpy as np

# Through the gateway: robosuite must be configured before any of its modules is imported.
from vla_razor.envs._robosuite import robosuite

OperationalSpaceController = robosuite.controllers.parts.arm.osc.OperationalSpaceController
SimpleGripController = robosuite.controllers.parts.gripper.simple_grip.SimpleGripController
# robosuite's numba-compiled kernels: the very functions its controller calls.
_control_utils = robosuite.utils.control_utils
nullspace_torques = _control_utils.nullspace_torques
opspace_matrices = _control_utils.opspace_matrices
orientation_error = _control_utils.orientation_error

_ARM, _GRIPPER = "right", "right_gripper"


def unsupported_reason(rs: Any) -> str | None:
    """Why :class:`FastControlLoop` cannot replay this robosuite env exactly (None if it can)."""
    if len(rs.robots) != 1:
        return f"{len(rs.robots)} robots"
    robot = rs.robots[0]
    cc = robot.composite_controller
    if type(cc).__name__ != "CompositeController" or set(cc.part_controllers) != {_ARM, _GRIPPER}:
        return f"composite controller {type(cc).__name__} with parts {sorted(cc.part_controllers)}"
    osc, grip = cc.part_controllers[_ARM], cc.part_controllers[_GRIPPER]
    if type(osc) is not OperationalSpaceController:
        return f"arm controller {type(osc).__name__}"
    checks = {
        "impedance_mode": (osc.impedance_mode, "fixed"),
        "input_type": (osc.input_type, "delta"),
        "input_ref_frame": (osc.input_ref_frame, "base"),
        "uncoupling": (osc.uncoupling, True),
        "num_ref_sites": (osc.num_ref_sites, 1),
        "lite_physics": (osc.lite_physics and rs.lite_physics, True),
        "interpolator_pos": (osc.interpolator_pos, None),
        "interpolator_ori": (osc.interpolator_ori, None),
    }
    for name, (value, expected) in checks.items():
        if value != expected:
            return f"OSC {name}={value!r} (fast path needs {expected!r})"
    if type(grip) is not SimpleGripController or grip.interpolator is not None:
        return f"gripper controller {type(grip).__name__} (interpolator {grip.interpolator!r})"
    if not (robot._enabled_parts.get(_ARM) and robot._enabled_parts.get(_GRIPPER)):
        return "arm or gripper disabled"
    if getattr(rs, "viewer", None) is not None:
        return "an on-screen viewer is attached"
    indexes = {
        "qpos_index": osc.qpos_index,
        "qvel_index": osc.qvel_index,
        "arm actuators": robot._ref_actuators_indexes_dict[_ARM],
    }
    for name, index in indexes.items():
        if _as_slice(index) is None:
            return f"{name} {index!r} is not a contiguous range"
    return None


def _as_slice(index: Any) -> slice | None:
    """``index`` (robosuite's list of ints) as the equivalent slice, if it is a contiguous range."""
    values = [int(i) for i in index]
    if not values or values != list(range(values[0], values[0] + len(values))):
        return None
    return slice(values[0], values[0] + len(values))


class FastControlLoop:
    """robosuite's ``env.step`` minus observables, with the OSC substeps replayed without overhead."""

    def __init__(self, rs: Any, streamline_controller: bool = True) -> None:
        """``streamline_controller=False`` keeps robosuite's controller code for every substep and only
        skips the observables (an ablation for the benchmark)."""
        reason = unsupported_reason(rs)
        if reason is not None:
            raise ValueError(f"fast control loop unsupported: {reason}")
        self.rs = rs
        self.streamline_controller = bool(streamline_controller)
        robot = rs.robots[0]
        osc = robot.composite_controller.part_controllers[_ARM]
        model = rs.sim.model
        self.ref_site = model.site_name2id(osc.ref_name)
        self.center_site = model.site_name2id(f"{osc.naming_prefix}{osc.part_name}_center")
        # robosuite indexes with lists of ints (slow fancy indexing); the same contiguous ranges as slices
        # select the same values. They are a property of the model: checked again at every step.
        self._indexes = (
            list(osc.qpos_index),
            list(osc.qvel_index),
            list(robot._ref_actuators_indexes_dict[_ARM]),
        )
        self.qpos = _as_slice(osc.qpos_index)
        self.qvel = _as_slice(osc.qvel_index)
        self.arm_actuators = _as_slice(robot._ref_actuators_indexes_dict[_ARM])
        # robosuite re-reads these every substep; the model never changes them.
        self.arm_low = model.actuator_ctrlrange[self.arm_actuators, 0]
        self.arm_high = model.actuator_ctrlrange[self.arm_actuators, 1]
        nv = model.nv
        self._full_mass = np.ndarray(shape=(nv, nv), dtype=np.float64, order="C")

    def step(self, action: np.ndarray) -> float:
        """Advance one control step exactly as ``rs.step(action)`` would; returns robosuite's reward.

        Leaves robosuite's observables (and their sampling timers) untouched: nothing of ours reads them.
        """
        rs = self.rs
        if rs.done:
            raise ValueError("executing action in terminated episode")
        rs.timestep += 1
        sim = rs.sim
        robot = rs.robots[0]
        osc = robot.composite_controller.part_controllers[_ARM]
        if self._indexes != (osc.qpos_index, osc.qvel_index, robot._ref_actuators_indexes_dict[_ARM]):
            raise RuntimeError("robosuite's joint or actuator indexes changed under the fast control loop")
        for i in range(int(rs.control_timestep / rs.model_timestep)):
            sim.step1()
            if i == 0 or not self.streamline_controller:
                # Policy substep: robosuite's own code sets the goals (arm and gripper) and its buffers.
                rs._pre_action(action, i == 0)
            else:
                # The gripper's command depends only on the goal set above: robosuite writes the same
                # ctrl values again every substep, so they are left in place.
                self._arm_substep(osc)
            sim.step2()
        rs.cur_time += rs.control_timestep
        reward, _, _ = rs._post_action(action)
        return reward

    def _arm_substep(self, osc: Any) -> None:
        """``robot.control(action, policy_step=False)`` for the arm: same operations, same operands.

        ``osc`` is looked up once per control step: robosuite builds new controller objects at every reset.
        """
        sim = self.rs.sim
        m, d = sim.model._model, sim.data._data
        nv = m.nv
        qvel = d.qvel
        dofs = self.qvel

        # CompositeController.update_state -> OSC.update_origin (robosuite runs it twice per substep).
        osc.origin_pos = np.array(d.site_xpos[self.center_site])
        osc.origin_ori = np.array(d.site_xmat[self.center_site].reshape([3, 3]))

        # Controller.update / _update_single_reference. robosuite evaluates the site Jacobian four
        # times here (twice for the velocities, twice for J); mj_jacSite fills jacp and jacr
        # independently, so one call gives the same arrays.
        osc.ref_pos[:] = d.site_xpos[self.ref_site]
        osc.ref_ori_mat[:, :] = d.site_xmat[self.ref_site].reshape([3, 3])
        jacp = np.zeros((3, nv))
        jacr = np.zeros((3, nv))
        mujoco.mj_jacSite(m, d, jacp, jacr, self.ref_site)
        osc.ref_pos_vel[:] = np.dot(jacp, qvel)
        osc.ref_ori_vel[:] = np.dot(jacr, qvel)
        osc.J_pos[:, :] = jacp[:, dofs]
        osc.J_ori[:, :] = jacr[:, dofs]
        osc.J_full[:3, :] = osc.J_pos
        osc.J_full[3:, :] = osc.J_ori
        osc.joint_pos = np.array(d.qpos[self.qpos])
        osc.joint_vel = np.array(qvel[dofs])
        # mj_fullM writes the whole matrix (robosuite hands it uninitialised memory), so a kept buffer works.
        mujoco.mj_fullM(m, self._full_mass, d.qM)
        # robosuite's double fancy index M[idx, :][:, idx] yields a Fortran-ordered copy, and the layout
        # selects numba's compiled specialisation of opspace_matrices: keep it.
        osc.mass_matrix = np.asfortranarray(self._full_mass[dofs, dofs])

        # OperationalSpaceController.run_controller (fixed impedance, base frame, no interpolators).
        desired_world_pos = osc.origin_pos + np.dot(osc.origin_ori, osc.goal_pos)
        desired_world_ori = np.dot(osc.origin_ori, osc.goal_ori)
        ori_error = orientation_error(desired_world_ori, osc.ref_ori_mat)
        position_error = desired_world_pos - osc.ref_pos
        base_jacp = np.zeros((3, nv))
        base_jacr = np.zeros((3, nv))
        mujoco.mj_jacSite(m, d, base_jacp, base_jacr, self.center_site)
        vel_pos_error = -(osc.ref_pos_vel - np.dot(base_jacp, qvel))
        desired_force = np.multiply(position_error, osc.kp[0:3]) + np.multiply(vel_pos_error, osc.kd[0:3])
        vel_ori_error = -(osc.ref_ori_vel - np.dot(base_jacr, qvel))
        desired_torque = np.multiply(ori_error, osc.kp[3:6]) + np.multiply(vel_ori_error, osc.kd[3:6])
        _, lambda_pos, lambda_ori, nullspace_matrix = opspace_matrices(
            osc.mass_matrix, osc.J_full, osc.J_pos, osc.J_ori
        )
        decoupled_wrench = np.concatenate(
            [np.dot(lambda_pos, desired_force), np.dot(lambda_ori, desired_torque)]
        )
        torques = np.dot(osc.J_full.T, decoupled_wrench) + d.qfrc_bias[dofs]
        torques += nullspace_torques(
            osc.mass_matrix, nullspace_matrix, osc.initial_joint, osc.joint_pos, osc.joint_vel
        )
        osc.torques = torques
        osc.new_update = True

        # FixedBaseRobot.control: clip to the actuator range and write the arm's ctrl.
        d.ctrl[self.arm_actuators] = np.clip(torques, self.arm_low, self.arm_high)
