"""Evaluate one policy on the held-out suite: success on every prior-skill task and on the new task.

N episodes per task on the suite's held-out seeds (greedy, or sampled as ``suite.decode`` says), resumed from the results store's episode log
(each episode is logged as it finishes), with the standard error and the 95% Wilson interval; recorded
episodes are saved as videos. How far the policy moved from pi0 is ``evaluation.divergences``, what it
forgot is ``evaluation.forgetting``, and ``evaluation.runner`` evaluates pi0 and a list of checkpoints.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vla_razor.evaluation.stats import wilson_interval
from vla_razor.evaluation.store import ResultsStore
from vla_razor.evaluation.success import SuccessResult, evaluate_success
from vla_razor.rollouts import EnvPool, policy_env_kwargs
from vla_razor.video import EpisodeRecorder, episode_video_name


def evaluate_policy(
    policy: Any,
    policy_id: str,
    policy_hash: str,
    store: ResultsStore,
    pool: EnvPool,
    *,
    videos: int = 0,
    video_dir: Path | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """The success record of one policy on the store's suite; resumes from the episodes already logged.

    ``policy_id`` and ``policy_hash`` name the policy in the store; ``videos`` episodes per task are
    recorded into ``video_dir`` (none when it is None); ``progress`` shows a progress bar.
    """
    suite = store.suite
    tasks = evaluate_success(
        policy,
        pool,
        suite.tasks,
        policy_env_kwargs(policy),
        suite.seeds,
        done={t: store.finished(policy_id, policy_hash, t) for t in suite.tasks},
        on_episode=lambda task, ep: store.append_episode(policy_id, policy_hash, task, ep),
        record=videos if video_dir is not None else 0,
        progress=policy_id if progress else False,
        sampling=suite.sampling,
    )
    if video_dir is not None:
        _save_videos(tasks, video_dir, policy_id)
    return {"policy": policy_id, "hash": policy_hash, "tasks": {t: _summary(r) for t, r in tasks.items()}}


def _save_videos(tasks: dict[str, SuccessResult], video_dir: Path, policy_id: str) -> None:
    for task, result in tasks.items():
        by_seed = {e.seed: e for e in result.episodes}
        for seed, frames in result.frames.items():
            rec = EpisodeRecorder(fps=10)
            for frame in frames:
                rec.add(frame)
            if len(rec):
                rec.save(video_dir / episode_video_name(task, seed, by_seed[seed].success, tag=policy_id))


def _summary(result: SuccessResult) -> dict[str, Any]:
    d = result.to_dict()
    d.pop("episodes")
    d["seeds"] = [e.seed for e in result.episodes]
    # Per-seed outcomes (in seed order): forgetting is paired over the seeds pi0 and a checkpoint share.
    d["successes"] = [int(e.success) for e in result.episodes]
    wilson = wilson_interval(sum(d["successes"]), len(d["successes"]))
    d["wilson_low"], d["wilson_high"] = wilson.low, wilson.high
    return d
