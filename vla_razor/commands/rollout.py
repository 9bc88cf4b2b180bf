"""``vla-razor rollout``: run a policy (the scripted expert or a checkpoint) and save one mp4 per episode."""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig

from vla_razor.commands.common import env_kwargs_from_cfg, positive_int
from vla_razor.episodes import make_actor, run_episode
from vla_razor.video import EpisodeRecorder, episode_video_name, video_dir

log = logging.getLogger(__name__)


def run(cfg: DictConfig) -> None:
    from vla_razor import envs

    episodes = positive_int(cfg.episodes, "episodes")
    out_dir = video_dir(cfg.video_dir)
    kwargs = env_kwargs_from_cfg(cfg)
    if cfg.render_camera:
        kwargs.update(render_camera=str(cfg.render_camera), render_size=int(cfg.render_size))
    actor = make_actor(
        str(cfg.policy.family),
        task=kwargs["task"],
        # policy=tiny without checkpoint=... rolls out the policy group's own weights (the committed pi0)
        checkpoint=cfg.checkpoint or cfg.policy.get("pretrained"),
        greedy=bool(cfg.greedy),
        temperature=float(cfg.temperature),
        seed=int(cfg.seed),
    )
    policy = getattr(actor, "policy", None)
    if policy is not None:  # the env must render exactly the cameras and size the policy was trained on
        from vla_razor.evaluation.suite import policy_env_kwargs

        kwargs.update(policy_env_kwargs(policy))
    env = envs.make_env(**kwargs)
    successes = 0
    try:
        for i in range(episodes):
            seed = int(cfg.seed) + i
            recorder = EpisodeRecorder(fps=int(cfg.fps))
            result = run_episode(env, actor, seed, recorder=recorder)
            path = recorder.save(Path(out_dir) / episode_video_name(kwargs["task"], seed, result.success))
            successes += result.success
            print(
                f"seed {seed}: {'success' if result.success else 'failure'} in {result.length} steps -> {path}"
            )
    finally:
        env.close()
    print(f"{kwargs['task']}: {successes}/{episodes} successful episodes")
