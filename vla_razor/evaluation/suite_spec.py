"""The held-out suite's definition: the new task, the prior skills, the seeds and the KL state counts.

A results folder records its suite (``identity``) and refuses another, so results of different suites are
never mixed.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, fields
from typing import Any

from vla_razor.envs import TASKS
from vla_razor.errors import BadInputError
from vla_razor.sampling import GREEDY, Sampling
from vla_razor.seeds import HELDOUT_SEED_START

log = logging.getLogger(__name__)

SUITE_BASE_POLICY_KEY = "pi0"
DECODE_MODES = ("greedy", "sampled")


@dataclass(frozen=True)
class SuiteSpec:
    name: str
    new_task: str
    prior_tasks: tuple[str, ...]
    episodes: int
    seed: int
    kl_states: int
    kl_state_seeds: int
    # How success episodes pick actions: "greedy" (each token its argmax) or "sampled" at ``temperature``,
    # each episode from its own generator seeded by (suite seed, task, env seed), so a sampled suite is as
    # reproducible as a greedy one. Sampled is the policy RL optimises and KL measures; greedy can hide a
    # skill a policy holds with probability under 1/2 per step (README "Greedy or sampled").
    decode: str = "greedy"
    temperature: float = 1.0

    def __post_init__(self) -> None:
        if self.decode not in DECODE_MODES:
            raise BadInputError(f"suite.decode={self.decode!r} is not one of {', '.join(DECODE_MODES)}")
        if not self.temperature > 0:
            raise BadInputError(f"suite.temperature must be > 0, got {self.temperature}")
        for task in (self.new_task, *self.prior_tasks):
            if task not in TASKS:
                raise BadInputError(
                    f"suite {self.name!r} names unknown task {task!r}; valid tasks: {', '.join(sorted(TASKS))}"
                )
        if self.episodes <= 0:
            raise BadInputError(f"suite.episodes must be > 0, got {self.episodes}")
        if self.kl_states < 0 or self.kl_states == 1:
            raise BadInputError(
                f"suite.kl_states must be 0 (no KL) or >= 2 (CKA and standard errors need 2), got {self.kl_states}"
            )
        if self.kl_states and self.kl_state_seeds < 1:
            raise BadInputError(
                f"suite.kl_state_seeds must be >= 1 when kl_states > 0, got {self.kl_state_seeds}"
            )
        if self.new_task in self.prior_tasks:
            raise BadInputError(
                f"suite {self.name!r}: the new task {self.new_task!r} is also listed as a prior skill"
            )
        if self.seed < HELDOUT_SEED_START:
            log.warning(
                "suite seed %d overlaps the training seed range (< %d)", self.seed, HELDOUT_SEED_START
            )

    @property
    def tasks(self) -> list[str]:
        return [*self.prior_tasks, self.new_task]

    @property
    def seeds(self) -> list[int]:
        return list(range(self.seed, self.seed + self.episodes))

    @property
    def kl_seeds(self) -> list[int]:
        # Disjoint from the success seeds, so KL states never come from a scored episode.
        start = self.seed + self.episodes
        return list(range(start, start + self.kl_state_seeds))

    @property
    def sampling(self) -> Sampling:
        """How the suite's success episodes pick their actions."""
        if self.decode == "greedy":
            return GREEDY
        return Sampling(greedy=False, temperature=self.temperature, episode_seed=self.seed)

    def identity(self) -> dict[str, Any]:
        """What must match for results to be comparable (used to refuse mixing suites in one folder).

        A greedy suite's identity has no decode entries, so folders written before they existed match."""
        identity = asdict(self) | {"prior_tasks": list(self.prior_tasks)}
        if self.decode == "greedy":
            del identity["decode"], identity["temperature"]
        return identity

    @classmethod
    def from_mapping(cls, cfg: Any) -> SuiteSpec:
        # A suite config also names its base policy (``pi0``, read by the commands' own ``pi0`` setting);
        # it is not part of the suite's identity: a result's pi0 is recorded by content hash.
        valid = [f.name for f in fields(cls)] + [SUITE_BASE_POLICY_KEY]
        unknown = sorted(set(cfg) - set(valid))
        if unknown:
            raise ValueError(f"unknown suite setting(s) {unknown}; valid: {', '.join(valid)}")
        return cls(
            name=str(cfg["name"]),
            new_task=str(cfg["new_task"]),
            prior_tasks=tuple(str(t) for t in cfg["prior_tasks"]),
            episodes=int(cfg["episodes"]),
            seed=int(cfg["seed"]),
            kl_states=int(cfg["kl_states"]),
            kl_state_seeds=int(cfg["kl_state_seeds"]),
            decode=str(cfg.get("decode", "greedy")),
            temperature=float(cfg.get("temperature", 1.0)),
        )
