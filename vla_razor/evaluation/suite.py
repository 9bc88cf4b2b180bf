"""The held-out manipulation suite: what a fine-tuned checkpoint kept, what it learned, how far it moved.

For pi0 and every checkpoint, on the SAME held-out seeds:
- success on every prior-skill task and on the new task (N episodes each, with the standard error);
- forgetting = pi0's prior-skill success minus the checkpoint's (per task and averaged), paired over seeds;
- forward KL(pi0 || pi), reverse KL, TV and L2 on action-token distributions over a fixed, cached set of
  new-task states drawn from pi0's own rollouts (standard errors clustered by episode);
- forward KL(pi0 || pi) on each prior task's states from pi0's own rollouts (the old-task drift that
  new-task KL may miss), representation drift (1 - linear CKA of the hidden state at the action position
  on the new-task states) and the L2 distance of the weights from pi0.

Results are append-only: every finished episode is written to ``episodes.jsonl`` at once, so an
interrupted evaluation resumes where it stopped; ``results.json`` is rebuilt from it atomically. Every
row carries the content hash of the policy that produced it, so a changed checkpoint is re-evaluated,
never reused by name, and a folder refuses results of a second pi0.
"""

from __future__ import annotations

import json
import logging
import platform
import subprocess
from dataclasses import asdict, dataclass, fields
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vla_razor.errors import BadInputError
from vla_razor.evaluation.identity import short_hash
from vla_razor.evaluation.kl_states import (
    collect_kl_states,
    load_kl_states,
    save_kl_states,
)
from vla_razor.evaluation.stats import clustered_mean, paired_forgetting, wilson_interval
from vla_razor.evaluation.success import SuccessResult, evaluate_success
from vla_razor.io_utils import ensure_writable_dir, write_json_atomic
from vla_razor.metrics.divergences import action_token_divergences
from vla_razor.metrics.representation import linear_cka
from vla_razor.metrics.weights import weight_l2_distance
from vla_razor.rollouts import EnvPool, SeededEpisode, policy_env_kwargs
from vla_razor.sampling import seeded_generator
from vla_razor.seeds import HELDOUT_SEED_START
from vla_razor.video import EpisodeRecorder, episode_video_name

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SuiteSpec:
    name: str
    new_task: str
    prior_tasks: tuple[str, ...]
    episodes: int
    seed: int
    kl_states: int
    kl_state_seeds: int

    def __post_init__(self) -> None:
        from vla_razor import envs

        for task in (self.new_task, *self.prior_tasks):
            if task not in envs.TASKS:
                raise BadInputError(
                    f"suite {self.name!r} names unknown task {task!r}; valid tasks: {', '.join(sorted(envs.TASKS))}"
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

    def identity(self) -> dict[str, Any]:
        """What must match for results to be comparable (used to refuse mixing suites in one folder)."""
        return asdict(self) | {"prior_tasks": list(self.prior_tasks)}

    @classmethod
    def from_mapping(cls, cfg: Any) -> SuiteSpec:
        unknown = sorted(set(cfg) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(
                f"unknown suite setting(s) {unknown}; valid: {', '.join(f.name for f in fields(cls))}"
            )
        return cls(
            name=str(cfg["name"]),
            new_task=str(cfg["new_task"]),
            prior_tasks=tuple(str(t) for t in cfg["prior_tasks"]),
            episodes=int(cfg["episodes"]),
            seed=int(cfg["seed"]),
            kl_states=int(cfg["kl_states"]),
            kl_state_seeds=int(cfg["kl_state_seeds"]),
        )


def run_info() -> dict[str, Any]:
    """Package versions and the git commit, recorded in every results file."""
    versions = {}
    for pkg in ("vla-razor", "torch", "transformers", "peft", "robosuite", "mujoco", "gymnasium", "numpy"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    try:
        commit = (
            subprocess.run(
                ["git", "rev-parse", "HEAD"],
                capture_output=True,
                text=True,
                timeout=10,
                cwd=Path(__file__).resolve().parent,
            ).stdout.strip()
            or None
        )
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {"versions": versions, "git_commit": commit, "python": platform.python_version()}


PI0_IDENTITY_FILE = "pi0_identity.json"
# What the first hashed results folders called their pi0 record; read, never written. (A study folder's
# pi0.json is another file: the study's pi0 unit, evaluation.study.STUDY_PI0.)
LEGACY_PI0_IDENTITY_FILE = "pi0.json"


class ResultsStore:
    """The append-only episode log and the per-policy metric records of one results folder.

    Rows are keyed by (policy id, content hash): a policy id whose bytes changed (a re-trained run in the
    same folder) finds no rows and is evaluated afresh. One folder holds one suite and one pi0.
    """

    def __init__(self, out_dir: str | Path, suite: SuiteSpec, pi0_hash: str) -> None:
        self.dir = ensure_writable_dir(out_dir, what="results directory")
        self.suite = suite
        self.pi0_hash = pi0_hash
        suite_file = self.dir / "suite.json"
        if suite_file.is_file():
            existing = json.loads(suite_file.read_text())
            if existing != suite.identity():
                raise BadInputError(
                    f"results folder {str(self.dir)!r} holds suite {existing.get('name')!r} with different settings; "
                    "use another out_dir (results of different suites must not be mixed)"
                )
        else:
            write_json_atomic(suite_file, suite.identity())
        recorded = self._recorded_pi0()
        if recorded is None:
            if any(
                (self.dir / name).exists() for name in ("episodes.jsonl", "policies.jsonl", "kl_states.npz")
            ):
                raise BadInputError(
                    f"results folder {str(self.dir)!r} holds results that predate content hashes (no record of "
                    "their pi0); use another out_dir"
                )
            write_json_atomic(self.dir / PI0_IDENTITY_FILE, {"hash": pi0_hash})
        elif recorded != pi0_hash:
            raise BadInputError(
                f"results folder {str(self.dir)!r} holds results of another pi0 "
                f"({short_hash(recorded)}, this pi0 is {short_hash(pi0_hash)}); use another out_dir "
                "(results of different pi0s must not be mixed)"
            )
        self.episodes_file = self.dir / "episodes.jsonl"
        self.metrics_file = self.dir / "policies.jsonl"

    def _recorded_pi0(self) -> str | None:
        for name in (PI0_IDENTITY_FILE, LEGACY_PI0_IDENTITY_FILE):
            path = self.dir / name
            if path.is_file():
                return str(json.loads(path.read_text())["hash"])
        return None

    def finished(self, policy_id: str, policy_hash: str, task: str) -> dict[int, SeededEpisode]:
        done: dict[int, SeededEpisode] = {}
        for row in _read_jsonl(self.episodes_file):
            if row["policy"] == policy_id and row.get("hash") == policy_hash and row["task"] == task:
                done[int(row["seed"])] = SeededEpisode(
                    int(row["seed"]), bool(row["success"]), int(row["length"]), row.get("sim_error")
                )
        return done

    def append_episode(self, policy_id: str, policy_hash: str, task: str, episode: SeededEpisode) -> None:
        _append_line(
            self.episodes_file, {"policy": policy_id, "hash": policy_hash, "task": task, **asdict(episode)}
        )

    def policy_record(self, policy_id: str, policy_hash: str) -> dict[str, Any] | None:
        found = None
        for row in _read_jsonl(self.metrics_file):
            if row["policy"] == policy_id and row.get("hash") == policy_hash:
                found = row
        return found

    def append_policy_record(self, record: dict[str, Any]) -> None:
        if "hash" not in record:
            raise ValueError("a policy record must carry the policy's content hash")
        _append_line(self.metrics_file, record)


def _append_line(path: Path, row: dict[str, Any]) -> None:
    """Append one JSON line; a line left unterminated by a kill is closed first, never extended."""
    prefix = ""
    if path.is_file() and path.stat().st_size:
        with open(path, "rb") as fh:
            fh.seek(-1, 2)
            prefix = "" if fh.read(1) == b"\n" else "\n"
    with open(path, "a") as fh:
        fh.write(prefix + json.dumps(row) + "\n")
        fh.flush()


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:  # a line cut by a kill mid-write: that episode simply re-runs
            continue
    return rows


def evaluate_policy(
    policy: Any,
    policy_id: str,
    policy_hash: str,
    suite: SuiteSpec,
    store: ResultsStore,
    pool: EnvPool,
    *,
    pi0: Any | None,
    kl_states: dict[str, dict[str, Any]] | None,
    pi0_weights: dict[str, torch.Tensor] | None,
    videos: int = 0,
    video_dir: Path | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """All suite metrics of one policy (pi0 itself when ``pi0`` is None); resumes from logged episodes.

    ``kl_states`` maps each suite task to its cached states from pi0's rollouts (``state_caches``).
    """
    tasks = evaluate_success(
        policy,
        pool,
        suite.tasks,
        policy_env_kwargs(policy),
        suite.seeds,
        done={t: store.finished(policy_id, policy_hash, t) for t in suite.tasks},
        on_episode=lambda task, ep: store.append_episode(policy_id, policy_hash, task, ep),
        record=videos if video_dir is not None else 0,
        progress=policy_id[:24] if progress else False,
    )
    if video_dir is not None:
        for task, result in tasks.items():
            by_seed = {e.seed: e for e in result.episodes}
            for seed, frames in result.frames.items():
                rec = EpisodeRecorder(fps=10)
                for frame in frames:
                    rec.add(frame)
                if len(rec):
                    rec.save(video_dir / episode_video_name(task, seed, by_seed[seed].success, tag=policy_id))
    record: dict[str, Any] = {
        "policy": policy_id,
        "hash": policy_hash,
        "tasks": {t: _summary(r) for t, r in tasks.items()},
    }
    if kl_states is not None:
        record["divergence"] = suite_divergences(pi0, policy, kl_states, suite)
    record["weight_l2_from_pi0"] = (
        0.0 if pi0 is None else weight_distance(pi0, policy, pi0_weights, weight_l2_distance)
    )
    return record


def suite_divergences(
    pi0: Any | None, policy: Any, kl_states: dict[str, dict[str, Any]], suite: SuiteSpec
) -> dict[str, Any]:
    """Divergences from pi0 on the new task's cached states, forward KL on each prior task's, and
    representation drift; pi0 itself (``pi0`` None) gets zeros."""
    new = kl_states[suite.new_task]
    priors = [t for t in suite.prior_tasks if t in kl_states]
    if pi0 is None:
        out: dict[str, Any] = {k: 0.0 for k in (*DIVERGENCES, "representation_drift")}
        out |= {f"{k}_sem": 0.0 for k in DIVERGENCES}
        out["prior_forward_kl"] = out["prior_forward_kl_sem"] = 0.0
        out["prior_forward_kl_per_task"] = {t: 0.0 for t in priors}
    else:
        out = measure_pair_divergences(pi0, policy, new)
        per_task = {
            t: measure_pair_divergences(pi0, policy, kl_states[t], keys=("forward_kl",)) for t in priors
        }
        if per_task:
            k = len(per_task)
            out["prior_forward_kl"] = float(np.mean([d["forward_kl"] for d in per_task.values()]))
            # Different tasks' states come from different episodes: their means are independent.
            out["prior_forward_kl_sem"] = float(
                np.sqrt(np.sum([d["forward_kl_sem"] ** 2 for d in per_task.values()])) / k
            )
            out["prior_forward_kl_per_task"] = {t: d["forward_kl"] for t, d in per_task.items()}
        out["representation_drift"] = 1.0 - representation_cka(pi0, policy, new)
    out["kl_states"] = float(len(new["instructions"]))
    out["kl_episodes"] = float(len(set(new["episodes"])))
    return out


def weight_distance(pi0: Any, policy: Any, pi0_weights: Any, fn: Any) -> float:
    # Compare the backbone weights (merged view) of pi and pi0 by name; the value head is not part of pi.
    mine = {n: p.detach() for n, p in merged_weights(policy).items()}
    base = pi0_weights if pi0_weights is not None else merged_weights(pi0)
    total = 0.0
    for name, w in mine.items():
        if name in base and base[name].shape == w.shape:
            total += float(((w.float() - base[name].float()) ** 2).sum())
    return total**0.5


def merged_weights(policy: Any) -> dict[str, torch.Tensor]:
    """Backbone weights with any LoRA update merged in, keyed by the plain (non-peft) parameter names."""
    from peft import PeftModel

    backbone = policy.backbone
    if isinstance(backbone, PeftModel):
        backbone.merge_adapter()
        try:
            return {
                _plain(n): p.detach().clone()
                for n, p in backbone.get_base_model().named_parameters()
                if "lora_" not in n
            }
        finally:
            backbone.unmerge_adapter()
    return {n: p.detach().clone() for n, p in backbone.named_parameters()}


def _plain(name: str) -> str:
    return name.replace(".base_layer.", ".")


DIVERGENCES = ("forward_kl", "reverse_kl", "tv", "l2")


def measure_pair_divergences(
    pi0: Any,
    pi: Any,
    states: dict[str, Any],
    batch_size: int = 64,
    seed: int = 0,
    keys: tuple[str, ...] = DIVERGENCES,
) -> dict[str, float]:
    """Mean divergences between two separately loaded policies over the cached states, each with its
    standard error clustered by the episode the states came from (CR1)."""
    n = len(states["instructions"])
    per: dict[str, list[torch.Tensor]] = {}
    generator = seeded_generator(seed, pi0.device)
    pi0.eval()
    pi.eval()
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        obs = {k: v[start:stop] for k, v in states["obs"].items()}
        batch = pi.prepare(obs, states["instructions"][start:stop])
        for key, value in action_token_divergences(pi0, pi, batch, generator=generator).items():
            per.setdefault(key, []).append(value.double().cpu())
    episodes = np.asarray(states["episodes"])
    out: dict[str, float] = {}
    for key in keys:
        summary = clustered_mean(torch.cat(per[key]).numpy(), episodes)
        out[key] = summary.mean
        out[f"{key}_sem"] = summary.se
    return out


@torch.no_grad()
def representation_cka(pi0: Any, pi: Any, states: dict[str, Any], batch_size: int = 64) -> float:
    """Linear CKA between pi0's and pi's hidden state at the action position over the cached states."""
    n = len(states["instructions"])
    feats0, feats = [], []
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        obs = {k: v[start:stop] for k, v in states["obs"].items()}
        batch = pi.prepare(obs, states["instructions"][start:stop])
        feats0.append(pi0.action_features(batch).double().cpu())
        feats.append(pi.action_features(batch).double().cpu())
    return linear_cka(torch.cat(feats0), torch.cat(feats))


def _summary(result: SuccessResult) -> dict[str, Any]:
    d = result.to_dict()
    d.pop("episodes")
    d["seeds"] = [e.seed for e in result.episodes]
    # Per-seed outcomes (in seed order): forgetting is paired over the seeds pi0 and a checkpoint share.
    d["successes"] = [int(e.success) for e in result.episodes]
    wilson = wilson_interval(sum(d["successes"]), len(d["successes"]))
    d["wilson_low"], d["wilson_high"] = wilson.low, wilson.high
    return d


def _outcomes(record: dict[str, Any], task: str) -> dict[int, bool]:
    summary = record["tasks"][task]
    return {int(s): bool(ok) for s, ok in zip(summary["seeds"], summary["successes"], strict=True)}


def add_forgetting(record: dict[str, Any], base: dict[str, Any], suite: SuiteSpec) -> dict[str, Any]:
    """Forgetting per prior task (pi0 success - policy success) and its mean, paired over the seeds both
    were scored on (Newcombe's interval per task; the SE of the mean treats tasks as independent)."""
    prior_tasks = list(suite.prior_tasks)
    prior = [record["tasks"][t]["success_rate"] for t in prior_tasks]
    prior_sem = [record["tasks"][t]["sem"] for t in prior_tasks]
    k = len(prior_tasks)
    if k:
        paired = paired_forgetting(
            {t: _outcomes(base, t) for t in prior_tasks},
            {t: _outcomes(record, t) for t in prior_tasks},
            prior_tasks,
        )
        record["forgetting"] = {
            "per_task": {t: d.difference for t, d in paired.per_task.items()},
            "per_task_interval": {t: [d.low, d.high] for t, d in paired.per_task.items()},
            "mean": paired.mean,
            "mean_sem": paired.se,
            "paired": True,
        }
    else:
        record["forgetting"] = {"per_task": {}, "mean": 0.0, "mean_sem": 0.0, "paired": True}
    record["prior_success"] = float(np.mean(prior)) if prior else float("nan")
    record["prior_success_sem"] = float(np.sqrt(np.sum(np.square(prior_sem))) / k) if k else 0.0
    record["new_task_success"] = record["tasks"][suite.new_task]["success_rate"]
    record["new_task_success_sem"] = record["tasks"][suite.new_task]["sem"]
    return record


def state_caches(pi0: Any, suite: SuiteSpec, store: ResultsStore, pool: EnvPool) -> dict[str, dict[str, Any]]:
    """Every suite task's states from pi0's own rollouts (the KL seeds, disjoint from the scored seeds),
    collected once per results folder: the new task's carry RL's Razor's predictor, the prior tasks'
    test whether drift on old-task states predicts forgetting better."""
    caches = {}
    for task in suite.tasks:
        name = "kl_states.npz" if task == suite.new_task else f"kl_states_{task}.npz"
        path = store.dir / name
        if path.is_file():
            caches[task] = load_kl_states(path)
            continue
        caches[task] = collect_kl_states(
            pi0,
            pool,
            {"task": task, **policy_env_kwargs(pi0)},
            suite.kl_seeds,
            max_states=suite.kl_states,
        )
        save_kl_states(path, caches[task])
    return caches
