"""Environment throughput: the gymnasium wrapper against raw robosuite under the same render settings.

    python benchmarks/env_throughput.py [--tasks lift pick_place_can] [--steps 100]

For each task prints steps/s for: raw ``robosuite.make(...).step`` and our env, single process, with
and without the camera, plus the vectorised env (2 forkserver workers). The ratio wrapper/raw should be
close to 1: the wrapper adds validation and bookkeeping, not renders.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from vla_razor import envs
from vla_razor.envs._robosuite import load_composite_controller_config, robosuite
from vla_razor.envs.placement import apply_placement, resolve_placement
from vla_razor.envs.rendering import apply_fast_render
from vla_razor.envs.tasks import DEFAULT_CONTROL_FREQ

IMAGE = 64


def _raw_env(task: str, camera: bool):
    spec = envs.get_task(task)
    rs = robosuite.make(
        spec.robosuite_env,
        robots="Panda",
        controller_configs=load_composite_controller_config(controller="BASIC", robot="Panda"),
        has_renderer=False,
        has_offscreen_renderer=camera,
        use_camera_obs=camera,
        camera_names=["agentview"],
        camera_heights=IMAGE,
        camera_widths=IMAGE,
        control_freq=DEFAULT_CONTROL_FREQ,
        hard_reset=False,
        horizon=10**9,
        ignore_done=True,
        **spec.robosuite_kwargs,
    )
    apply_placement(rs, spec, resolve_placement(spec, None))
    rs.reset()
    if camera:
        apply_fast_render(rs.sim, IMAGE, IMAGE)
    return rs


def _rate(step, steps: int) -> float:
    rng = np.random.default_rng(0)
    actions = rng.uniform(-0.3, 0.3, size=(steps, 7)).astype(np.float32)
    step(actions[0])  # warm-up (first render, numba)
    start = time.perf_counter()
    for a in actions:
        step(a)
    return steps / (time.perf_counter() - start)


def _wrapper_step(env):
    def step(a):
        _, _, terminated, truncated, _ = env.step(a)
        if terminated or truncated:
            env.reset()

    return step


def bench(task: str, steps: int, vector: bool) -> dict[str, float]:
    out: dict[str, float] = {}
    for camera in (False, True):
        tag = "cam" if camera else "nocam"
        rs = _raw_env(task, camera)
        out[f"raw_{tag}"] = _rate(rs.step, steps)
        rs.close()
        env = envs.make_env(task, use_camera=camera, image_size=IMAGE, horizon=10**6)
        env.reset(seed=0)
        out[f"env_{tag}"] = _rate(_wrapper_step(env), steps)
        env.close()
        if vector:
            vec = envs.make_vector_env(task, 2, use_camera=camera, image_size=IMAGE, horizon=10**6)
            vec.reset(seed=0)
            batch = np.zeros((2, 7), dtype=np.float32)
            vec.step(batch)
            start = time.perf_counter()
            for _ in range(steps // 2):
                vec.step(batch)
            out[f"vec2_{tag}"] = 2 * (steps // 2) / (time.perf_counter() - start)
            vec.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="*", default=["lift", "pick_place_can", "stack", "door"])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--no-vector", action="store_true")
    args = parser.parse_args()
    for task in args.tasks:
        envs.get_task(task)
    print(
        f"steps/s, {IMAGE}x{IMAGE} agentview, fast render, control_freq {DEFAULT_CONTROL_FREQ}, {args.steps} steps"
    )
    print("| task | camera | raw robosuite | env | env/raw | vector (2 envs) |")
    print("|---|---|---|---|---|---|")
    for task in args.tasks:
        r = bench(task, args.steps, not args.no_vector)
        for tag, label in (("nocam", "off"), ("cam", "on")):
            vec = f"{r[f'vec2_{tag}']:.1f}" if f"vec2_{tag}" in r else "-"
            ratio = r[f"env_{tag}"] / r[f"raw_{tag}"]
            print(
                f"| {task} | {label} | {r[f'raw_{tag}']:.1f} | {r[f'env_{tag}']:.1f} | {ratio:.2f} | {vec} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
