"""Expert demonstrations in robomimic's HDF5 layout.

File layout (robomimic-compatible, plus a few vla-razor attributes)::

    data/                       attrs: env_args (JSON: env_name, type, env_kwargs -> envs.make_env(**env_kwargs)),
                                       total, episodes_tried, episodes_succeeded, instruction, noise_std, ...
      demo_0/                   attrs: num_samples, seed, instruction
        obs/<key>               [T, ...] observation before each action (images uint8, proprio, object_state)
        actions                 [T, 7]  clean expert action (the training label)
        executed_actions        [T, 7]  the action actually sent to the simulator (differs with DART noise)
        rewards, dones          [T]
        states                  [T, S]  flat MuJoCo state before each action (env.reset_to(states[t]) replays)
    mask/train, mask/valid      demo names held in / held back for validation

Episodes run in the rollout engine's env workers (forkserver: a GL context in the parent would hang
``fork``); the parent writes each successful episode as it arrives into a temporary file that is renamed
only when complete.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from tqdm.auto import tqdm

from vla_razor.errors import BadInputError, MissingFileError, UserError
from vla_razor.io_utils import atomic_path
from vla_razor.rollouts import EngineSettings, EnvPool
from vla_razor.rollouts.calls import imap_on_envs

log = logging.getLogger(__name__)

FORMAT_VERSION = 1


@dataclass
class EpisodeRecord:
    """One expert episode as produced by a worker."""

    seed: int
    success: bool
    obs: dict[str, np.ndarray] = field(default_factory=dict)
    actions: np.ndarray | None = None
    executed_actions: np.ndarray | None = None
    rewards: np.ndarray | None = None
    dones: np.ndarray | None = None
    states: np.ndarray | None = None
    instruction: str = ""
    error: str | None = None

    @property
    def num_samples(self) -> int:
        return 0 if self.actions is None else int(self.actions.shape[0])


@dataclass
class DemoSummary:
    path: Path
    task: str
    tried: int
    succeeded: int
    total_samples: int
    seconds: float
    errors: int

    @property
    def success_rate(self) -> float:
        return self.succeeded / max(self.tried, 1)


# ----------------------------------------------------------------------------------------------- workers
def _worker_episode(env: Any, task: str, seed: int, noise_std: float) -> EpisodeRecord:
    """One expert episode inside an env worker of the rollout engine."""
    try:
        return run_expert_episode(env, task, seed, noise_std)
    except Exception as exc:  # a crashed episode is a failed episode, never a dead collection run
        log.exception("expert episode seed=%d crashed", seed)
        return EpisodeRecord(seed=seed, success=False, error=f"{type(exc).__name__}: {exc}")


def _died(job: tuple[Any, ...], reason: str) -> EpisodeRecord:
    return EpisodeRecord(seed=int(job[1]), success=False, error=f"env worker died: {reason}")


def run_expert_episode(env: Any, task: str, seed: int, noise_std: float = 0.0) -> EpisodeRecord:
    """Roll out the scripted expert for one seeded episode, recording everything a replay needs.

    With ``noise_std > 0`` (DART), Gaussian noise is added to the executed arm action while the clean
    expert action is stored as the label, so the data shows how to recover from small deviations.
    """
    from vla_razor import envs

    expert = envs.make_expert(task)
    expert.reset()
    rng = np.random.default_rng(seed + 1_000_003)
    obs, _ = env.reset(seed=seed)
    base = env.unwrapped
    obs_keys = [k for k in obs if k != "instruction"]
    buffers: dict[str, list[np.ndarray]] = {k: [] for k in obs_keys}
    actions, executed, rewards, dones, states = [], [], [], [], []
    success, error = False, None
    while True:
        states.append(np.asarray(base.get_state(), dtype=np.float64).copy())
        for k in obs_keys:
            buffers[k].append(np.asarray(obs[k]).copy())
        action = np.asarray(expert.act(obs), dtype=np.float32)
        sent = action.copy()
        if noise_std > 0:
            sent[:-1] = np.clip(sent[:-1] + rng.normal(0.0, noise_std, size=sent.shape[0] - 1), -1.0, 1.0)
        obs, reward, terminated, truncated, info = env.step(sent)
        actions.append(action)
        executed.append(sent)
        rewards.append(float(reward))
        dones.append(bool(terminated or truncated))
        if terminated or truncated:
            success = bool(info.get("is_success", False))
            error = info.get("sim_error")
            break
    return EpisodeRecord(
        seed=seed,
        success=success,
        obs={k: np.stack(v) for k, v in buffers.items()},
        actions=np.stack(actions),
        executed_actions=np.stack(executed),
        rewards=np.asarray(rewards, dtype=np.float32),
        dones=np.asarray(dones, dtype=np.uint8),
        states=np.stack(states),
        instruction=str(base.instruction),
        error=error,
    )


# ----------------------------------------------------------------------------------------------- collect
@dataclass(frozen=True)
class DemoRequest:
    """What a demo file holds: ``episodes`` successful expert episodes of ``task``, and how they are played.

    Seeds ``seed, seed+1, ...`` are tried in order until enough episodes succeed (at most ``max_attempts``,
    default 3x ``episodes``). ``noise_std`` > 0 adds DART noise to the executed arm action;
    ``valid_fraction`` of the demos are held back for validation; ``env_kwargs`` are ``envs.make_env``'s
    options (cameras, image size, render profile, ...).
    """

    task: str
    episodes: int
    seed: int = 0
    noise_std: float = 0.0
    max_attempts: int | None = None
    valid_fraction: float = 0.1
    env_kwargs: dict[str, Any] = field(default_factory=dict)


def collect_demos(
    request: DemoRequest,
    out: str | Path,
    *,
    num_workers: int = 2,
    progress: bool = True,
    pool: EnvPool | None = None,
) -> DemoSummary:
    """Collect the demonstrations ``request`` asks for into ``out`` (HDF5).

    Failed episodes are counted in the file (``episodes_tried``) but not stored. Episodes run in the
    workers of ``pool`` (the command's; with none, a pool of ``num_workers`` is started for this call).
    """
    from vla_razor import envs

    # The request's fields by their short names: the collection below reads them throughout.
    task, episodes, seed, noise_std = request.task, request.episodes, request.seed, request.noise_std
    valid_fraction = request.valid_fraction
    spec = envs.get_task(task)  # an unknown task fails here, with the list of valid ones
    if episodes <= 0:
        raise BadInputError(f"episodes must be > 0, got {episodes}")
    if num_workers <= 0:
        raise BadInputError(f"num_workers must be > 0, got {num_workers}")
    if noise_std < 0:
        raise BadInputError(f"noise_std must be >= 0, got {noise_std}")
    if not 0.0 <= valid_fraction < 1.0:
        raise BadInputError(f"valid_fraction must be in [0, 1), got {valid_fraction}")
    max_attempts = request.max_attempts or 3 * episodes
    if pool is None:
        with EnvPool(EngineSettings(num_workers=num_workers)) as own:
            return collect_demos(request, out, num_workers=num_workers, progress=progress, pool=own)
    kwargs = {"task": task, **request.env_kwargs}
    out = Path(out)
    start = time.perf_counter()
    tried = succeeded = total = errors = 0
    jobs = [(task, seed + i, noise_std) for i in range(max_attempts)]
    env_args: dict[str, Any] | None = None

    with atomic_path(out) as tmp, h5py.File(tmp, "w") as f:
        data = f.create_group("data")
        bar = tqdm(total=episodes, desc=f"demos {task}", unit="demo", disable=not progress)
        for record in imap_on_envs(pool, kwargs, _worker_episode, jobs, _died):
            tried += 1
            if record.error:
                errors += 1
                log.warning("seed %d: %s (counted as a failed episode)", record.seed, record.error)
            if record.success:
                _write_episode(data, f"demo_{succeeded}", record)
                succeeded += 1
                total += record.num_samples
                bar.update(1)
            bar.set_postfix(tried=tried, success=f"{succeeded / tried:.0%}")
            if succeeded >= episodes:
                break
        bar.close()
        if succeeded == 0:
            raise UserError(
                f"the {task!r} expert succeeded in none of {tried} episodes; no demo file written"
            )
        if env_args is None:
            env_args = _env_args(kwargs)
        data.attrs.update(
            {
                "env_args": json.dumps(env_args),
                "total": total,
                "episodes_tried": tried,
                "episodes_succeeded": succeeded,
                "instruction": spec.instruction,
                "noise_std": noise_std,
                "seed_start": seed,
                "format_version": FORMAT_VERSION,
            }
        )
        _write_split(f, succeeded, valid_fraction, seed)
    if succeeded < episodes:
        log.warning("only %d/%d demos after %d attempts for %s", succeeded, episodes, tried, task)
    return DemoSummary(out, task, tried, succeeded, total, time.perf_counter() - start, errors)


def _env_args(kwargs: dict[str, Any]) -> dict[str, Any]:
    # Ask a real env for its rebuild metadata so defaults filled in by envs are recorded too.
    from vla_razor import envs

    env = envs.make_env(**{**kwargs, "use_camera": False})
    try:
        metadata = dict(env.unwrapped.env_metadata())
    finally:
        env.close()
    metadata.update({k: v for k, v in kwargs.items() if k != "use_camera"})
    metadata.pop("use_camera", None)
    return {"env_name": kwargs["task"], "type": "vla_razor", "env_kwargs": metadata}


def _write_episode(data: h5py.Group, name: str, record: EpisodeRecord) -> None:
    group = data.create_group(name)
    obs = group.create_group("obs")
    for key, value in record.obs.items():
        # Images compress well and dominate the file size; low-dim arrays stay uncompressed.
        compression = "gzip" if value.dtype == np.uint8 else None
        obs.create_dataset(key, data=value, compression=compression)
    group.create_dataset("actions", data=record.actions)
    group.create_dataset("executed_actions", data=record.executed_actions)
    group.create_dataset("rewards", data=record.rewards)
    group.create_dataset("dones", data=record.dones)
    group.create_dataset("states", data=record.states)
    group.attrs.update(
        {"num_samples": record.num_samples, "seed": record.seed, "instruction": record.instruction}
    )


def _write_split(f: h5py.File, n: int, valid_fraction: float, seed: int) -> None:
    names = np.array([f"demo_{i}" for i in range(n)])
    order = np.random.default_rng(seed).permutation(n)
    n_valid = int(round(valid_fraction * n)) if n > 1 else 0
    mask = f.create_group("mask")
    mask.create_dataset("valid", data=names[order[:n_valid]].astype("S"))
    mask.create_dataset("train", data=names[order[n_valid:]].astype("S"))


# ----------------------------------------------------------------------------------------------- read
class DemoFile:
    """Read access to a demonstration file written by :func:`collect_demos` (or robomimic's layout)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise MissingFileError(f"demo file {str(self.path)!r} does not exist")
        try:
            self._file = h5py.File(self.path, "r")
        except OSError as exc:
            raise BadInputError(f"{str(self.path)!r} is not an HDF5 demo file ({exc})") from None
        if "data" not in self._file:
            raise BadInputError(f"{str(self.path)!r} has no 'data' group; not a robomimic-style demo file")
        self.attrs = dict(self._file["data"].attrs)

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> DemoFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def env_args(self) -> dict[str, Any]:
        return json.loads(self.attrs["env_args"])

    @property
    def env_kwargs(self) -> dict[str, Any]:
        """Keyword arguments that rebuild the exact environment: ``envs.make_env(**demo.env_kwargs)``."""
        return dict(self.env_args["env_kwargs"])

    @property
    def task(self) -> str:
        return str(self.env_args["env_name"])

    @property
    def instruction(self) -> str:
        return str(self.attrs.get("instruction", ""))

    def demo_names(self, split: str | None = None) -> list[str]:
        """Demo names in numeric order; ``split`` selects robomimic's ``mask/<split>`` filter key."""
        if split is None:
            names = list(self._file["data"].keys())
        else:
            if "mask" not in self._file or split not in self._file["mask"]:
                valid = list(self._file["mask"].keys()) if "mask" in self._file else []
                raise BadInputError(f"split {split!r} not in {str(self.path)!r}; valid splits: {valid}")
            names = [n.decode() for n in self._file["mask"][split][()]]
        return sorted(names, key=lambda n: int(n.split("_")[-1]))

    def episode(self, name: str) -> dict[str, Any]:
        group = self._file["data"][name]
        return {
            "obs": {k: group["obs"][k][()] for k in group["obs"]},
            "actions": group["actions"][()],
            "executed_actions": group["executed_actions"][()] if "executed_actions" in group else None,
            "rewards": group["rewards"][()],
            "dones": group["dones"][()],
            "states": group["states"][()],
            "seed": int(group.attrs.get("seed", -1)),
            "instruction": str(group.attrs.get("instruction", self.instruction)),
        }

    def all_actions(self, split: str | None = None) -> np.ndarray:
        return np.concatenate([self._file["data"][n]["actions"][()] for n in self.demo_names(split)])

    def obs_keys(self) -> list[str]:
        first = self.demo_names()[0]
        return list(self._file["data"][first]["obs"].keys())


def ensure_demos(
    task: str,
    episodes: int,
    path: Path,
    env_kwargs: dict[str, Any],
    noise_std: float,
    pool: EnvPool,
    seed: int,
) -> Path:
    """Reuse ``path`` if it already holds enough demos recorded with the same image size and render
    profile, else collect."""
    if path.is_file():
        with DemoFile(path) as demo:
            enough = len(demo.demo_names()) >= episodes
            recorded = {"render_profile": "full", **demo.env_kwargs}  # files from before profiles: full
            same = all(recorded.get(k) == env_kwargs.get(k, "full") for k in ("image_size", "render_profile"))
        if enough and same:
            log.info("reusing %s", path)
            return path
    request = DemoRequest(task, episodes, seed=seed, noise_std=noise_std, env_kwargs=env_kwargs)
    summary = collect_demos(request, path, pool=pool)
    print(
        f"{task}: {summary.succeeded} demos ({summary.success_rate:.0%} of {summary.tried} expert episodes) -> {path}"
    )
    return path
