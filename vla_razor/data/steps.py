"""Demonstration steps held in memory for behaviour cloning, with seeded minibatch sampling.

Tiny-VLA demos are small (64x64 images, a few hundred episodes), so every step lives in RAM and a
minibatch is a fancy-index; this keeps the BC loop simple and makes resume bit-exact (the only
randomness is a numpy Generator whose state is checkpointed).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vla_razor.data.demos import DemoFile
from vla_razor.errors import BadInputError


@dataclass
class StepData:
    """Flat arrays of steps: observations (per key), instruction index per step, expert action labels."""

    obs: dict[str, np.ndarray]
    instruction_ids: np.ndarray  # [N] index into `instructions`
    instructions: list[str]
    actions: np.ndarray  # [N, 7]
    episode_ids: np.ndarray  # [N] running episode number (for diagnostics)

    def __len__(self) -> int:
        return int(self.actions.shape[0])

    def batch(self, index: np.ndarray) -> tuple[dict[str, np.ndarray], list[str], np.ndarray]:
        obs = {k: v[index] for k, v in self.obs.items()}
        return obs, [self.instructions[i] for i in self.instruction_ids[index]], self.actions[index]

    @staticmethod
    def concat(parts: Sequence[StepData]) -> StepData:
        parts = [p for p in parts if len(p)]
        if not parts:
            raise BadInputError("no demonstration steps to train on (all demo files/splits empty)")
        # The first file's key order, never a set's: BC's augmentation draws its random shifts key by key,
        # and a set of strings iterates in an order that changes with each process's hash seed, so a
        # run's batches (and weights) differed between two processes started alike.
        keys = list(parts[0].obs)
        for p in parts[1:]:
            if set(p.obs) != set(keys):
                raise BadInputError(
                    f"demo files disagree on observation keys: {sorted(keys)} vs {sorted(p.obs)}"
                )
        instructions: list[str] = []
        ids, offset_eps = [], 0
        episode_ids = []
        for p in parts:
            remap = np.array([_index(instructions, s) for s in p.instructions], dtype=np.int64)
            ids.append(remap[p.instruction_ids])
            episode_ids.append(p.episode_ids + offset_eps)
            offset_eps += int(p.episode_ids.max()) + 1 if len(p) else 0
        return StepData(
            obs={k: np.concatenate([p.obs[k] for p in parts]) for k in keys},
            instruction_ids=np.concatenate(ids),
            instructions=instructions,
            actions=np.concatenate([p.actions for p in parts]),
            episode_ids=np.concatenate(episode_ids),
        )


def _index(items: list[str], item: str) -> int:
    if item not in items:
        items.append(item)
    return items.index(item)


def load_steps(
    paths: Sequence[str | Path],
    obs_keys: Sequence[str],
    split: str | None = None,
    *,
    action_dim: int = 7,
    max_episodes: int | None = None,
    allow_empty: bool = False,
    render_profile: str | None = None,
) -> StepData | None:
    """Load the steps of one split of several demo files, checking they fit the policy's inputs.

    With ``allow_empty`` an empty selection (e.g. no validation demos in small files) returns None.
    ``render_profile`` (the policy's) must be the one the demos were rendered with.
    """
    parts = []
    for path in paths:
        with DemoFile(path) as demo:
            recorded = demo.env_kwargs.get("render_profile", "full")  # files from before profiles: full
            if render_profile is not None and recorded != render_profile:
                raise BadInputError(
                    f"demo file {str(path)!r} was rendered with render_profile={recorded!r}; the policy "
                    f"uses {render_profile!r} (collect demos with the policy's render profile)"
                )
            available = demo.obs_keys()
            missing = [k for k in obs_keys if k not in available]
            if missing:
                raise BadInputError(
                    f"demo file {str(path)!r} lacks observation(s) {missing}; it has {available} "
                    "(collect demos with the cameras the policy uses)"
                )
            names = demo.demo_names(split)[:max_episodes]
            obs: dict[str, list[np.ndarray]] = {k: [] for k in obs_keys}
            actions, instr, eps = [], [], []
            for e, name in enumerate(names):
                ep = demo.episode(name)
                if ep["actions"].shape[-1] != action_dim:
                    raise BadInputError(
                        f"demo file {str(path)!r} has {ep['actions'].shape[-1]}-dim actions; the policy "
                        f"expects {action_dim}"
                    )
                for k in obs_keys:
                    obs[k].append(ep["obs"][k])
                actions.append(ep["actions"].astype(np.float32))
                instr.append(np.zeros(len(ep["actions"]), dtype=np.int64))
                eps.append(np.full(len(ep["actions"]), e, dtype=np.int64))
            if not names:
                continue
            parts.append(
                StepData(
                    obs={k: np.concatenate(v) for k, v in obs.items()},
                    instruction_ids=np.concatenate(instr),
                    instructions=[demo.instruction],
                    actions=np.concatenate(actions),
                    episode_ids=np.concatenate(eps),
                )
            )
    if allow_empty and not any(len(p) for p in parts):
        return None
    return StepData.concat(parts)


def random_shift(images: np.ndarray, pad: int, rng: np.random.Generator) -> np.ndarray:
    """DrQ-style augmentation: pad by ``pad`` edge pixels and crop back at a random offset per image."""
    if pad <= 0:
        return images
    n, h, w, _ = images.shape
    padded = np.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="edge")
    dy = rng.integers(0, 2 * pad + 1, size=n)
    dx = rng.integers(0, 2 * pad + 1, size=n)
    return np.stack([padded[i, dy[i] : dy[i] + h, dx[i] : dx[i] + w] for i in range(n)])
