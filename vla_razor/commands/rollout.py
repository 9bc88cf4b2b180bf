"""``vla-razor rollout``: run a policy (the scripted expert or a checkpoint) and save one mp4 per episode."""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig

from vla_razor.commands.common import positive_int
from vla_razor.episodes import load_actor_policy, record_episodes
from vla_razor.rollouts import EnvPool, policy_env_kwargs
from vla_razor.video import EpisodeRecorder, episode_video_name, video_dir
from vla_razor.workflows.config_blocks import engine_settings, env_kwargs_from_cfg

log = logging.getLogger(__name__)


def run(cfg: DictConfig) -> None:
    episodes = positive_int(cfg.episodes, "episodes")
    out_dir = video_dir(cfg.video_dir)
    kwargs = env_kwargs_from_cfg(cfg)
    if cfg.render_camera:
        kwargs.update(render_camera=str(cfg.render_camera), render_size=int(cfg.render_size))
    # policy=tiny without checkpoint=... rolls out the policy group's own weights (the committed pi0)
    policy = load_actor_policy(str(cfg.policy.family), cfg.checkpoint or cfg.policy.get("pretrained"))
    if policy is not None:  # the env must render exactly the cameras and size the policy was trained on
        kwargs.update(policy_env_kwargs(policy))
    seeds = [int(cfg.seed) + i for i in range(episodes)]
    with EnvPool(engine_settings(cfg)) as pool:
        recorded = record_episodes(
            pool,
            policy,
            kwargs,
            seeds,
            greedy=bool(cfg.greedy),
            temperature=float(cfg.temperature),
            sample_seed=int(cfg.seed),
        )
    successes = 0
    for item in recorded:
        ep = item.episode
        if not item.frames:  # its worker died before the first frame came back
            print(f"seed {ep.seed}: failure ({ep.sim_error}), no video")
            continue
        recorder = EpisodeRecorder(fps=int(cfg.fps))
        for frame in item.frames:
            recorder.add(frame)
        path = recorder.save(Path(out_dir) / episode_video_name(kwargs["task"], ep.seed, ep.success))
        successes += ep.success
        print(f"seed {ep.seed}: {'success' if ep.success else 'failure'} in {ep.length} steps -> {path}")
    print(f"{kwargs['task']}: {successes}/{episodes} successful episodes")
