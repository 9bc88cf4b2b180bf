"""The gymnasium environment around one robosuite task (see vla_razor.envs.tasks for the task table)."""

from __future__ import annotations

import importlib
import logging
import string
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np
from gymnasium import spaces

from vla_razor.envs._robosuite import REGISTERED_ENVS, load_composite_controller_config, robosuite
from vla_razor.envs.fast_step import FastControlLoop, unsupported_reason
from vla_razor.envs.placement import apply_placement, resolve_placement
from vla_razor.envs.relabel import make_relabeller
from vla_razor.envs.render_meshes import models_compiled_with
from vla_razor.envs.render_profiles import DEFAULT_RENDER_PROFILE, get_render_profile
from vla_razor.envs.rendering import (
    apply_fast_render,
    check_rendering_backend,
    release_render_context,
    render_camera,
)
from vla_razor.envs.tasks import DEFAULT_CONTROL_FREQ, Placement, get_task
from vla_razor.errors import BadInputError

logger = logging.getLogger(__name__)

ACTION_DIM = 7
PROPRIO_DIM = 9
INSTRUCTION_CHARSET = string.ascii_letters + string.digits + " .,'-"
REWARD_MODES = ("binary", "shaped")
# Seed of robosuite's generator while the model is built. Some tasks draw the model itself from
# ``env.rng`` at construction: Lift's cube half-extents are uniform in [0.020, 0.022]^3. robosuite's
# default (seed=None) draws them from OS entropy, and with hard_reset=False the model is never rebuilt, so
# every process had its own cube for its whole life (the cube's resting height, its grasp and the episode
# differed between processes for one reset seed). A fixed seed makes the model a function of the task.
MODEL_SEED = 0
# MuJoCo resets the data itself after these warnings: the state is no longer the episode's.
_SIM_WARNINGS = (
    mujoco.mjtWarning.mjWARN_BADQACC,
    mujoco.mjtWarning.mjWARN_BADQPOS,
    mujoco.mjtWarning.mjWARN_BADQVEL,
)


def robosuite_env_name(name: str) -> str:
    """robosuite's registry name of a task's environment.

    ``module.Class`` names a user's own robosuite environment: importing its module registers the class
    with robosuite (robosuite's metaclass does that), in whichever process builds the env.
    """
    module, _, cls = name.rpartition(".")
    if module:
        importlib.import_module(module)
    if cls not in REGISTERED_ENVS:
        raise BadInputError(
            f"unknown robosuite environment {name!r}; valid: {', '.join(sorted(REGISTERED_ENVS))}, or "
            "module.Class of your own robosuite environment"
        )
    return cls


class RobosuiteTaskEnv(gym.Env):
    """A Panda robosuite task with OSC_POSE delta actions, camera images, proprio and an instruction.

    Episodes terminate on success and are truncated at the horizon. robosuite's own horizon/``done``
    are disabled so that a success is never reported as a time-out and vice versa. A MuJoCo instability
    (``mujoco.FatalError`` or one of the ``_SIM_WARNINGS``) terminates the episode as a failure with
    ``info["sim_error"]``; any other exception raised while stepping propagates.

    ``fast_step=True`` (the default) steps the physics with :class:`~vla_razor.envs.fast_step.FastControlLoop`
    (robosuite's arithmetic without its observables and controller overhead) and renders without the
    mesh geoms a camera cannot see (:mod:`~vla_razor.envs.culling`); observations, rewards and dynamics are
    bit-identical to ``fast_step=False``, which runs robosuite's own ``step`` and ``sim.render``.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": DEFAULT_CONTROL_FREQ}

    def __init__(
        self,
        task: str,
        *,
        cameras: Sequence[str] | None = None,
        image_size: int = 64,
        fast_render: bool = True,
        use_camera: bool = True,
        horizon: int | None = None,
        control_freq: int | None = None,
        placement: Placement | None = None,
        reward: str | None = None,
        render_camera: str | None = None,
        render_size: int | None = None,
        render_mode: str | None = None,
        fast_step: bool = True,
        render_profile: str = DEFAULT_RENDER_PROFILE,
        expert_labels: bool = False,
    ) -> None:
        self.spec_task = get_task(task)
        self.render_profile = get_render_profile(render_profile)
        # Unset cameras and reward are the task's own defaults (a config-defined task may choose them).
        cameras = self.spec_task.default_cameras if cameras is None else cameras
        reward = self.spec_task.default_reward if reward is None else reward
        if reward not in REWARD_MODES:
            raise BadInputError(f"unknown reward {reward!r}; valid: {', '.join(REWARD_MODES)}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise BadInputError(f"unknown render_mode {render_mode!r}; valid: rgb_array")
        cameras = (cameras,) if isinstance(cameras, str) else tuple(cameras)
        if use_camera and not cameras:
            raise BadInputError("use_camera=True needs at least one camera name in cameras")
        if int(image_size) < 8:
            raise BadInputError(f"image_size={image_size!r} must be an integer >= 8")
        self.horizon = int(horizon if horizon is not None else self.spec_task.horizon)
        if self.horizon < 1:
            raise BadInputError(f"horizon={horizon!r} must be >= 1")
        self.control_freq = int(control_freq if control_freq is not None else DEFAULT_CONTROL_FREQ)
        if self.control_freq < 1:
            raise BadInputError(f"control_freq={control_freq!r} must be >= 1")
        self.cameras = cameras if use_camera else ()
        self.image_size = int(image_size)
        self.fast_render = bool(fast_render)
        self.fast_step = bool(fast_step)
        # Culled renders (bit-identical; a switch of its own for the benchmark's ablations).
        self._cull = self.fast_step
        self.use_camera = bool(use_camera)
        self.reward_mode = reward
        self.render_camera = render_camera
        self.render_size = int(render_size) if render_size is not None else (256 if render_camera else None)
        self.render_mode = render_mode
        self.placement = resolve_placement(self.spec_task, placement)
        self.instruction = self.spec_task.instruction
        self.metadata = {**self.metadata, "render_fps": self.control_freq}

        needs_gl = bool(self.cameras) or render_camera is not None
        if needs_gl:
            check_rendering_backend()
        with models_compiled_with(self.render_profile):
            self._rs = self._make_robosuite(reward, needs_gl)
        # The model is built; episodes draw from here on. An unseeded first reset must stay random per
        # process, as gymnasium expects (vector workers must not all start from the same episode), so the
        # generator leaves the fixed build seed for OS entropy; reset(seed=s) reseeds it in place.
        self._rs.rng.bit_generator.state = np.random.default_rng().bit_generator.state
        self._validate_camera_names()
        apply_placement(self._rs, self.spec_task, self.placement)
        self._render_ctx: Any = None
        self._configure_rendering()
        self._fast_loop: FastControlLoop | None = None
        if self.fast_step:
            reason = unsupported_reason(self._rs)
            if reason is None:
                self._fast_loop = FastControlLoop(self._rs)
            else:
                logger.info("task %s: robosuite's own step (fast control loop unsupported: %s)", task, reason)

        self.action_space = spaces.Box(-1.0, 1.0, shape=(ACTION_DIM,), dtype=np.float32)
        obs_spaces: dict[str, spaces.Space] = {
            f"{cam}_image": spaces.Box(0, 255, shape=(self.image_size, self.image_size, 3), dtype=np.uint8)
            for cam in self.cameras
        }
        obs_spaces["proprio"] = spaces.Box(-np.inf, np.inf, shape=(PROPRIO_DIM,), dtype=np.float32)
        obs_spaces["object_state"] = spaces.Box(
            -np.inf, np.inf, shape=(self.spec_task.object_state_dim,), dtype=np.float32
        )
        obs_spaces["instruction"] = spaces.Text(max_length=128, charset=INSTRUCTION_CHARSET)
        # DAgger's labels: the relabelling expert's action at every observed state (privileged state).
        self._relabeller = make_relabeller(task) if expert_labels else None
        if self._relabeller is not None:
            obs_spaces["expert_action"] = spaces.Box(-1.0, 1.0, shape=(ACTION_DIM,), dtype=np.float32)
        self.observation_space = spaces.Dict(obs_spaces)

        self._elapsed_steps = 0
        self._needs_reset = True
        self._warning_counts = self._sim_warning_counts()

    # ------------------------------------------------------------------ set-up helpers
    def _make_robosuite(self, reward: str, needs_gl: bool) -> Any:
        return robosuite.make(
            robosuite_env_name(self.spec_task.robosuite_env),
            robots="Panda",
            controller_configs=load_composite_controller_config(controller="BASIC", robot="Panda"),
            has_renderer=False,
            has_offscreen_renderer=needs_gl,
            # We render cameras ourselves (one render per step, only the cameras asked for).
            use_camera_obs=False,
            use_object_obs=True,
            control_freq=self.control_freq,
            # Hard resets rebuild the model and GL context every episode (about 1 s) and drop our settings.
            hard_reset=False,
            horizon=10**9,
            ignore_done=True,
            reward_shaping=(reward == "shaped"),
            seed=MODEL_SEED,
            **self.spec_task.robosuite_kwargs,
        )

    def _validate_camera_names(self) -> None:
        valid = tuple(self._rs.sim.model.camera_names)
        for cam in (*self.cameras, *([self.render_camera] if self.render_camera else [])):
            if cam not in valid:
                raise BadInputError(f"unknown camera {cam!r}; valid cameras: {', '.join(valid)}")

    def _configure_rendering(self) -> None:
        """(Re)apply the fast-render settings whenever robosuite has built a new render context."""
        if self._rs.sim._render_context_offscreen is None:
            return
        if self._rs.sim._render_context_offscreen is self._render_ctx:
            return
        size = max(self.image_size if self.cameras else 0, self.render_size or 0)
        self._render_ctx = apply_fast_render(
            self._rs.sim, size, size, fast=self.fast_render, profile=self.render_profile
        )

    def _sim_warning_counts(self) -> tuple[int, ...]:
        return tuple(int(self._rs.sim.data.warning[w].number) for w in _SIM_WARNINGS)

    # ------------------------------------------------------------------ observations
    def _proprio(self) -> np.ndarray:
        robot = self._rs.robots[0]
        eef_site = robot.eef_site_id["right"]
        pos = self._rs.sim.data.site_xpos[eef_site]
        mat = self._rs.sim.data.site_xmat[eef_site].reshape(3, 3)
        quat_wxyz = np.empty(4)
        mujoco.mju_mat2Quat(quat_wxyz, mat.flatten())
        gripper = self._rs.sim.data.qpos[robot._ref_gripper_joint_pos_indexes["right"]]
        return np.concatenate([pos, np.roll(quat_wxyz, -1), gripper]).astype(np.float32)

    def _observation(self) -> dict[str, Any]:
        obs: dict[str, Any] = {
            f"{cam}_image": render_camera(
                self._rs.sim, cam, self.image_size, self.image_size, cull=self._cull
            )
            for cam in self.cameras
        }
        obs["proprio"] = self._proprio()
        obs["object_state"] = np.asarray(self.spec_task.object_state(self._rs), dtype=np.float32)
        obs["instruction"] = self.instruction
        if self._relabeller is not None:
            label = self._relabeller.label(self._rs, obs["proprio"], obs["object_state"])
            obs["expert_action"] = np.asarray(label, dtype=np.float32)
        return obs

    # ------------------------------------------------------------------ gymnasium API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        if seed is not None:
            # Placement samplers and robot init noise draw from robosuite's env.rng and hold a
            # reference to it, so the generator must be reseeded in place, not replaced.
            self._rs.rng.bit_generator.state = np.random.default_rng(seed).bit_generator.state
        self._rs.reset()
        self._configure_rendering()
        if self._relabeller is not None:
            self._relabeller.reset(self._rs, self.spec_task.object_state(self._rs))
        self._elapsed_steps = 0
        self._needs_reset = False
        self._warning_counts = self._sim_warning_counts()
        return self._observation(), {"is_success": False}

    def _validate_action(self, action: Any) -> np.ndarray:
        arr = np.asarray(action, dtype=np.float64)
        if arr.shape != (ACTION_DIM,):
            raise ValueError(
                f"action has shape {arr.shape}; expected ({ACTION_DIM},) = xyz, rpy deltas, gripper"
            )
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"action contains NaN/inf: {arr.tolist()}; expected finite values in [-1, 1]")
        # Out-of-range values are clipped, as robosuite's controller would do.
        return np.clip(arr, -1.0, 1.0)

    def step(self, action: Any):
        arr = self._validate_action(action)
        if self._needs_reset:
            raise RuntimeError("step() called on a finished episode; call reset() first")
        self._elapsed_steps += 1
        info: dict[str, Any] = {}
        sim_error: str | None = None
        try:
            if self._fast_loop is not None:
                rs_reward = self._fast_loop.step(arr)
            else:
                _, rs_reward, _, _ = self._rs.step(arr)
            # mj_step leaves positions/contacts one substep behind qpos; recomputing them makes the
            # observation (and success check) a pure function of get_state(), so reset_to replays exactly.
            self._rs.sim.forward()
        except mujoco.FatalError as exc:
            # A physics blow-up MuJoCo cannot recover from must end the episode, never the run. Only
            # MuJoCo's own errors qualify: any other exception is a bug (ours, a controller's, an
            # expert's) and propagates with its traceback instead of hiding as a failed episode.
            rs_reward, sim_error = 0.0, f"MuJoCo error: {exc}"
        else:
            if self._sim_warning_counts() != self._warning_counts:
                sim_error = "MuJoCo instability (bad qacc/qpos/qvel); the simulator reset its state"
        if sim_error is not None:
            logger.warning(
                "task %s step %d: %s; episode ends as a failure",
                self.spec_task.name,
                self._elapsed_steps,
                sim_error,
            )
            self._needs_reset = True
            info.update(is_success=False, sim_error=sim_error)
            obs = self._safe_observation()
            # terminated, not truncated: the episode failed, and a learner must not bootstrap a value
            # from a state the simulator has already thrown away.
            return obs, 0.0, True, False, info
        success = bool(self.spec_task.success(self._rs))
        reward = float(success) if self.reward_mode == "binary" else float(rs_reward) + float(success)
        terminated = success
        truncated = not success and self._elapsed_steps >= self.horizon
        self._needs_reset = terminated or truncated
        info["is_success"] = success
        return self._observation(), reward, terminated, truncated, info

    def _safe_observation(self) -> dict[str, Any]:
        """An observation after a simulator error: real if possible, zeros otherwise."""
        try:
            return self._observation()
        except Exception:
            return {
                key: (space.sample() * 0 if isinstance(space, spaces.Box) else self.instruction)
                for key, space in self.observation_space.spaces.items()
            }

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array":
            return None
        frame = self.render_frame()
        if frame is None and self.cameras:
            frame = render_camera(
                self._rs.sim, self.cameras[0], self.image_size, self.image_size, cull=self._cull
            )
        return frame

    def close(self) -> None:
        if getattr(self, "_rs", None) is not None:
            if self._rs.sim is not None:
                # Free our GL objects now and inside our own GL context (see envs/rendering.py), not
                # whenever the collector finds them while another env's context is current.
                release_render_context(self._rs.sim)
            self._rs.close()
            self._rs = None
        self._render_ctx = None

    # ------------------------------------------------------------------ project API
    def render_frame(self) -> np.ndarray | None:
        """The optional high-resolution video frame; rendered only when called (None if not configured)."""
        if self.render_camera is None:
            return None
        assert self.render_size is not None
        return render_camera(
            self._rs.sim, self.render_camera, self.render_size, self.render_size, cull=self._cull
        )

    def get_state(self) -> np.ndarray:
        """Flat MuJoCo state [time, qpos, qvel] (robomimic/robosuite convention)."""
        return np.asarray(self._rs.sim.get_state().flatten(), dtype=np.float64)

    def reset_to(self, state: np.ndarray) -> dict[str, Any]:
        """Restore an exact simulator state saved with :meth:`get_state`; returns the observation there.

        Valid for states of this task built with the same kwargs (same model). The step counter is
        recovered from the simulated time so the horizon still applies to replays.
        """
        state = np.asarray(state, dtype=np.float64)
        expected = 1 + self._rs.sim.model.nq + self._rs.sim.model.nv
        if state.shape != (expected,):
            raise ValueError(
                f"state has shape {state.shape}; expected ({expected},) for task {self.spec_task.name}"
            )
        if self._needs_reset and self._elapsed_steps == 0:
            # First use: robosuite must have run its internal reset (references, observables).
            self.reset()
        self._rs.sim.set_state_from_flattened(state)
        self._rs.sim.forward()
        self._sync_controllers()
        self._rs._update_observables(force=True)
        self._elapsed_steps = int(round(state[0] * self.control_freq))
        self._needs_reset = False
        self._warning_counts = self._sim_warning_counts()
        return self._observation()

    def _sync_controllers(self) -> None:
        """Re-derive controller state that MuJoCo's state vector does not hold.

        The OSC arm controller caches the end-effector pose (its delta reference); the Panda gripper
        ramps a hidden command, re-estimated here from the finger positions (exact at rest, close while
        the fingers move).
        """
        robot = self._rs.robots[0]
        for controller in robot.composite_controller.part_controllers.values():
            controller.update(force=True)
            controller.reset_goal()
        for arm, gripper in robot.gripper.items():
            if not hasattr(gripper, "current_action"):
                continue
            actuators = robot._ref_joint_gripper_actuator_indexes[arm]
            low, high = self._rs.sim.model.actuator_ctrlrange[actuators].T
            fingers = self._rs.sim.data.qpos[robot._ref_gripper_joint_pos_indexes[arm]]
            gripper.current_action = np.clip(2 * (fingers - low) / (high - low) - 1, -1.0, 1.0)

    def env_metadata(self) -> dict[str, Any]:
        """JSON-serialisable kwargs that rebuild this env with ``envs.make_env(**metadata)``."""
        return {
            "task": self.spec_task.name,
            "cameras": list(self.cameras) if self.use_camera else [],
            "image_size": self.image_size,
            "fast_render": self.fast_render,
            "use_camera": self.use_camera,
            "horizon": self.horizon,
            "control_freq": self.control_freq,
            "placement": self.placement,
            "reward": self.reward_mode,
            "render_camera": self.render_camera,
            "render_size": self.render_size,
            "fast_step": self.fast_step,
        }

    @property
    def elapsed_steps(self) -> int:
        return self._elapsed_steps

    @property
    def robosuite_env(self) -> Any:
        """The wrapped robosuite environment (for tools that need raw access)."""
        return self._rs
