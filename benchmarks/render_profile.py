"""How far can the render-only meshes be simplified? Image difference against ``full`` beside speed.

    python benchmarks/render_profile.py [--tasks grasp_lift_bread lift] [--steps 40] [--repeats 5]

For each candidate (mesh fraction, size threshold, and the shipped ``fast`` profile's other settings:
no skybox, coarser primitives) it prints the faces drawn, how far the policy's two 64x64 camera images
move from the ``full`` profile's (mean absolute difference in levels of 255, its 99th percentile, and the
share of pixels off by more than 16 levels, over the same seeded expert episodes), and env steps/s with
both cameras, the candidates taking turns within each repeat so that machine load hits all alike.
``fast`` in ``vla_razor/envs/render_profiles.py`` is the candidate this table chose.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from collections import defaultdict

import mujoco
import numpy as np

from vla_razor import envs
from vla_razor.envs.render_profiles import FAST, FULL, RenderProfile
from vla_razor.machine import describe_machine

CAMERAS = ("agentview", "robot0_eye_in_hand")
IMAGE = 64
SEEDS = (0, 1, 2)


def candidates(quick: bool) -> dict[str, RenderProfile]:
    """The profiles compared: ``full``, mesh-only variants, and the shipped ``fast``."""
    out = {"full": FULL, "meshes 10% only": dataclasses.replace(FULL, name="m10", mesh_fraction=0.1)}
    fractions = (0.1,) if quick else (0.3, 0.2, 0.1, 0.05)
    for fraction in fractions:
        for min_faces in (1000,) if quick else (1000, 200):
            name = f"fast, meshes {fraction:g} above {min_faces} faces"
            out[name] = dataclasses.replace(FAST, mesh_fraction=fraction, mesh_min_faces=min_faces)
    out["fast (shipped)"] = FAST
    return out


def visual_faces(env) -> int:
    model = env.unwrapped.robosuite_env.sim.model._model
    meshes = [g for g in range(model.ngeom) if model.geom_type[g] == mujoco.mjtGeom.mjGEOM_MESH]
    return sum(int(model.mesh_facenum[model.geom_dataid[g]]) for g in meshes if model.geom_contype[g] == 0)


def expert_images(env, task: str, steps: int) -> np.ndarray:
    """Both cameras along the scripted expert's seeded episodes (the states a policy meets)."""
    images = []
    for seed in SEEDS:
        expert = envs.make_expert(task)
        obs, _ = env.reset(seed=seed)
        for _ in range(steps):
            images += [obs[f"{cam}_image"] for cam in CAMERAS]
            obs, _, terminated, truncated, _ = env.step(expert.act(obs))
            if terminated or truncated:
                break
    return np.stack(images).astype(np.float32)


def step_rates(built: dict[str, object], steps: int, repeats: int) -> dict[str, list[float]]:
    actions = np.random.default_rng(0).uniform(-0.3, 0.3, size=(steps, 7))
    rates: dict[str, list[float]] = defaultdict(list)
    for repeat in range(repeats + 1):  # repeat 0 warms up
        for name, env in built.items():
            env.reset(seed=5)
            start = time.perf_counter()
            for action in actions:
                env.step(action)
            if repeat:
                rates[name].append(steps / (time.perf_counter() - start))
    return rates


def bench(task: str, steps: int, repeats: int, quick: bool) -> None:
    profiles = candidates(quick)
    built = {
        name: envs.make_env(task, cameras=CAMERAS, image_size=IMAGE, horizon=10**6, render_profile=p)
        for name, p in profiles.items()
    }
    try:
        faces = {name: visual_faces(env) for name, env in built.items()}
        reference = expert_images(built["full"], task, steps)
        diffs = {name: np.abs(expert_images(env, task, steps) - reference) for name, env in built.items()}
        rates = step_rates(built, steps, repeats)
    finally:
        for env in built.values():
            env.close()
    print(f"\n{task}: {len(reference)} images vs full; steps/s median of {repeats} interleaved repeats")
    print("| profile | visual mesh faces | mean abs diff | p99 diff | pixels off > 16 | steps/s | vs full |")
    print("|---|---|---|---|---|---|---|")
    full_rates = np.asarray(rates["full"])
    for name in profiles:
        d = diffs[name]
        share = float((d.max(axis=-1) > 16).mean())
        print(
            f"| {name} | {faces[name]} | {d.mean():.2f} | "
            f"{np.percentile(d, 99):.0f} | {100 * share:.2f}% | {np.median(rates[name]):.1f} | "
            f"{np.median(np.asarray(rates[name]) / full_rates):.2f}x |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="*", default=["grasp_lift_bread", "lift"])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="only full, meshes-only and the shipped fast")
    args = parser.parse_args()
    print(f"machine: {describe_machine()}")
    for task in args.tasks:
        bench(task, args.steps, args.repeats, args.quick)


if __name__ == "__main__":
    main()
