"""Environment throughput: our env against raw robosuite, side by side in one run.

    python benchmarks/env_throughput.py [--tasks lift grasp_lift_bread] [--steps 40] [--repeats 5]
    python benchmarks/env_throughput.py --profile [--tasks lift]   # where one control step's time goes
    python benchmarks/env_throughput.py --memory [--tasks lift]    # resident memory of one env

Every configuration of a task is built first, then they take turns: each repeat resets every
configuration to the same seeded state and times the same ``--steps`` random actions, in turn, so load
from other processes hits all of them alike. Tables give the median steps/s over the repeats and ratios
as the median of the per-repeat ratios.

Configurations (64x64 images, fast render, control_freq 10):

- ``raw``: ``robosuite.make(...).step`` with robosuite's camera observations, today's settings (the
  fast-render settings of ``envs/rendering.py``, ``hard_reset=False``, robosuite's default
  ``lite_physics=True``); no camera, agentview, or the policy's two cameras (agentview +
  robot0_eye_in_hand, as pi0 uses).
- ``today``: our env with ``fast_step=False``: robosuite's own ``step`` and ``sim.render``, the code path
  before this optimisation.
- ``fast``: our env as shipped (``fast_step=True``).
- ``fast_profile``: ``fast`` with ``render_profile="fast"`` (simplified render-only meshes, no skybox,
  coarser primitives; ``vla_razor/envs/render_profiles.py``).
- ablations of ``fast`` (with ``--ablations``): each optimisation alone, to measure its own effect.
- ``vector2_today`` / ``vector2_fast`` (with ``--vector``): two forkserver workers (total steps/s).

The ``--profile`` mode times the parts of one control step (physics substeps, controller, observables,
each camera's scene update / culling / draw / read-back) for ``today`` and ``fast``.

The ``--memory`` mode measures, in a fresh process per task, the resident memory (VmRSS) that our env
with the policy's cameras adds: the first env of a process (which also starts robosuite's renderer) and
a second one of the same task (what each further env costs a worker), and what closing both gives back.
It also prints MuJoCo's arena: the size robosuite's ``base.xml`` declares (``nconmax = njmax = 5000``)
against the most any step used, which says whether a smaller arena would save resident memory.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import multiprocessing
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import mujoco
import numpy as np

from vla_razor import envs
from vla_razor.envs import culling
from vla_razor.envs import fast_step as fast_step_module
from vla_razor.envs._robosuite import load_composite_controller_config, robosuite
from vla_razor.envs.fast_step import FastControlLoop
from vla_razor.envs.placement import apply_placement, resolve_placement
from vla_razor.envs.rendering import apply_fast_render
from vla_razor.envs.robosuite_env import MODEL_SEED
from vla_razor.envs.tasks import DEFAULT_CONTROL_FREQ
from vla_razor.machine import describe_machine

IMAGE = 64
POLICY_CAMERAS = ("agentview", "robot0_eye_in_hand")
CAMERA_SETS = {"none": (), "agentview": ("agentview",), "policy": POLICY_CAMERAS}
SEED = 0


class RawEnv:
    """Raw robosuite with camera observations, reset to the same seeded state as our env."""

    def __init__(self, task: str, cameras: tuple[str, ...]) -> None:
        spec = envs.get_task(task)
        camera = bool(cameras)
        self.rs = robosuite.make(
            spec.robosuite_env,
            robots="Panda",
            controller_configs=load_composite_controller_config(controller="BASIC", robot="Panda"),
            has_renderer=False,
            has_offscreen_renderer=camera,
            use_camera_obs=camera,
            camera_names=list(cameras) or ["agentview"],
            camera_heights=IMAGE,
            camera_widths=IMAGE,
            control_freq=DEFAULT_CONTROL_FREQ,
            hard_reset=False,
            horizon=10**9,
            ignore_done=True,
            seed=MODEL_SEED,  # the same model as our env (Lift draws its cube size at build time)
            **spec.robosuite_kwargs,
        )
        apply_placement(self.rs, spec, resolve_placement(spec, None))
        self.rs.reset()
        if camera:
            apply_fast_render(self.rs.sim, IMAGE, IMAGE)

    def reset(self, seed: int) -> None:
        self.rs.rng.bit_generator.state = np.random.default_rng(seed).bit_generator.state
        self.rs.reset()
        ctx = self.rs.sim._render_context_offscreen
        if ctx is not None:
            # robosuite renders into whatever GL context is current; several envs live in this process.
            ctx.gl_ctx.make_current()

    def step(self, action: np.ndarray) -> None:
        self.rs.step(action)

    def close(self) -> None:
        self.rs.close()


class VectorEnv:
    """Two forkserver workers of our env (the evaluation's layout), stepped with the same action."""

    def __init__(self, task: str, cameras: tuple[str, ...], fast: bool) -> None:
        self.vec = envs.make_vector_env(
            task,
            2,
            cameras=cameras,
            use_camera=bool(cameras),
            image_size=IMAGE,
            horizon=10**6,
            fast_step=fast,
        )
        self.steps_per_call = 2

    def reset(self, seed: int) -> None:
        self.vec.reset(seed=seed)

    def step(self, action: np.ndarray) -> None:
        self.vec.step(np.stack([action, action]))

    def close(self) -> None:
        self.vec.close()


class OurEnv:
    """Our env; ``loop`` / ``cull`` switch the two optimisations independently (ablations)."""

    def __init__(
        self,
        task: str,
        cameras: tuple[str, ...],
        fast: bool,
        loop: str = "fast",
        cull: bool = True,
        profile: str = "full",
    ):
        self.env = envs.make_env(
            task,
            cameras=cameras or ("agentview",),
            use_camera=bool(cameras),
            image_size=IMAGE,
            horizon=10**6,
            fast_step=fast,
            render_profile=profile,
        )
        if fast:
            self.env._cull = cull
            if loop == "robosuite":
                self.env._fast_loop = None
            elif loop == "no_observables":
                self.env._fast_loop = FastControlLoop(self.env.robosuite_env, streamline_controller=False)

    def reset(self, seed: int) -> None:
        self.env.reset(seed=seed)

    def step(self, action: np.ndarray) -> None:
        _, _, terminated, truncated, _ = self.env.step(action)
        if terminated or truncated:
            self.env.reset()

    def close(self) -> None:
        self.env.close()


def configurations(cameras: str, ablations: bool, vector: bool = False) -> dict[str, Callable[[str], Any]]:
    cams = CAMERA_SETS[cameras]
    configs: dict[str, Callable[[str], Any]] = {
        "raw": lambda task: RawEnv(task, cams),
        "today": lambda task: OurEnv(task, cams, fast=False),
        "fast": lambda task: OurEnv(task, cams, fast=True),
        "fast_profile": lambda task: OurEnv(task, cams, fast=True, profile="fast"),
    }
    if vector:
        configs["vector2_today"] = lambda task: VectorEnv(task, cams, fast=False)
        configs["vector2_fast"] = lambda task: VectorEnv(task, cams, fast=True)
    if ablations:
        configs["only_no_observables"] = lambda task: OurEnv(
            task, cams, True, loop="no_observables", cull=False
        )
        configs["only_fast_loop"] = lambda task: OurEnv(task, cams, True, loop="fast", cull=False)
        if cams:
            configs["only_culling"] = lambda task: OurEnv(task, cams, True, loop="robosuite", cull=True)
    return configs


def interleaved_rates(builders: dict[str, Callable[[str], Any]], task: str, steps: int, repeats: int):
    """{config: [steps/s per repeat]}, the configurations taking turns within each repeat."""
    actions = np.random.default_rng(0).uniform(-0.3, 0.3, size=(steps, 7))
    built = {name: build(task) for name, build in builders.items()}
    rates: dict[str, list[float]] = defaultdict(list)
    try:
        for repeat in range(repeats + 1):  # repeat 0 warms up (first renders, numba, caches)
            for name, env in built.items():
                env.reset(SEED)
                env.step(actions[0])
                start = time.perf_counter()
                for action in actions:
                    env.step(action)
                rate = getattr(env, "steps_per_call", 1) * steps / (time.perf_counter() - start)
                if repeat:
                    rates[name].append(rate)
    finally:
        for env in built.values():
            env.close()
    return rates


def ratio(rates: dict[str, list[float]], a: str, b: str) -> float:
    return float(np.median(np.asarray(rates[a]) / np.asarray(rates[b])))


def print_table(title: str, header: Sequence[str], rows: Iterable[Sequence[str]]) -> None:
    """A markdown table under ``title``: the header, its separator, then one line of cells per row."""
    print(title)
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")


def bench_tables(args: argparse.Namespace) -> None:
    print(f"machine: {describe_machine()}")
    print(
        f"steps/s (median of {args.repeats} interleaved repeats x {args.steps} steps), {IMAGE}x{IMAGE} images, "
        f"fast render, control_freq {DEFAULT_CONTROL_FREQ}; ratios = median of per-repeat ratios"
    )
    print(
        "| task | cameras | raw robosuite | env today | env fast | env fast + fast profile | today/raw | "
        "fast/raw | fast/today | fast profile/fast |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    ablation_rows = []
    vector_rows = []
    summary = []
    for task in args.tasks:
        for cameras in args.cameras:
            configs = configurations(cameras, args.ablations, args.vector)
            rates = interleaved_rates(configs, task, args.steps, args.repeats)
            med = {k: float(np.median(v)) for k, v in rates.items()}
            print(
                f"| {task} | {cameras} | {med['raw']:.1f} | {med['today']:.1f} | {med['fast']:.1f} | "
                f"{med['fast_profile']:.1f} | {ratio(rates, 'today', 'raw'):.2f} | "
                f"{ratio(rates, 'fast', 'raw'):.2f} | {ratio(rates, 'fast', 'today'):.2f} | "
                f"{ratio(rates, 'fast_profile', 'fast'):.2f} |",
                flush=True,
            )
            if cameras == "policy":
                summary.append((task, ratio(rates, "fast", "raw"), ratio(rates, "fast_profile", "fast")))
            for name in rates:
                if name.startswith("only_"):
                    ablation_rows.append((task, cameras, name, med[name], ratio(rates, name, "today")))
            if "vector2_fast" in rates:
                vector_rows.append(
                    (
                        task,
                        cameras,
                        med["vector2_today"],
                        med["vector2_fast"],
                        ratio(rates, "vector2_fast", "vector2_today"),
                    )
                )
    if ablation_rows:
        print_table(
            "\nablations: each optimisation alone, against `today` in the same run",
            ("task", "cameras", "configuration", "steps/s", "vs today"),
            [
                (task, cameras, name, f"{rate:.1f}", f"{r:.2f}")
                for task, cameras, name, rate, r in ablation_rows
            ],
        )
    if vector_rows:
        print_table(
            "\nvectorised: 2 forkserver workers, total steps/s",
            ("task", "cameras", "today", "fast", "fast/today"),
            [(task, cameras, f"{t:.1f}", f"{f:.1f}", f"{r:.2f}") for task, cameras, t, f, r in vector_rows],
        )
    for task, r, profile_gain in summary:
        print(f"{task}: env steps/s with the policy's two cameras = {r:.2f}x raw robosuite (target >= 2x)")
        print(
            f"{task}: render_profile=fast = {profile_gain:.2f}x the full profile, both fast_step (target >= 2x)"
        )


# ---------------------------------------------------------------------------------------------- profile
class Timers:
    """Accumulates wall time of patched callables, by label."""

    def __init__(self) -> None:
        self.total: dict[str, float] = defaultdict(float)

    @contextlib.contextmanager
    def patch(self, owner: Any, attr: str, label: str) -> Iterator[None]:
        original = getattr(owner, attr)
        total = self.total

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                total[label] += time.perf_counter() - start

        setattr(owner, attr, timed)
        try:
            yield
        finally:
            setattr(owner, attr, original)


def profile_step(task: str, fast: bool, steps: int, profile: str = "full") -> dict[str, float]:
    """Milliseconds per control step, by component, with the policy's two cameras."""
    env = envs.make_env(
        task,
        cameras=POLICY_CAMERAS,
        image_size=IMAGE,
        horizon=10**6,
        fast_step=fast,
        render_profile=profile,
    )
    rs = env.robosuite_env
    actions = np.random.default_rng(0).uniform(-0.3, 0.3, size=(steps, 7))
    env.reset(seed=SEED)
    env.step(actions[0])
    timers = Timers()
    with contextlib.ExitStack() as stack:
        patches = [
            (rs.sim, "step1", "mj_step1 (x substeps)"),
            (rs.sim, "step2", "mj_step2 (x substeps)"),
            (rs, "_pre_action", "controller: robosuite (policy substep, or every substep today)"),
            (rs, "_update_observables", "robosuite observables: per-substep update"),
            (rs, "_get_observations", "robosuite observables: observation dict"),
            (rs, "_post_action", "reward"),
            (mujoco, "mjv_updateScene", "render: mjv_updateScene"),
            (mujoco, "mjr_render", "render: mjr_render (draw)"),
            (mujoco, "mjr_readPixels", "render: mjr_readPixels (finish + read-back)"),
            (fast_step_module.FastControlLoop, "_arm_substep", "controller: fast arm substeps"),
            (culling.SceneCuller, "hidden_geoms", "render: culling"),
            (mujoco, "mjv_updateCamera", "render: mjv_updateCamera"),
            (
                type(env.robosuite_env.sim._render_context_offscreen.gl_ctx),
                "make_current",
                "render: make_current",
            ),
            (env, "_proprio", "obs: proprio"),
            (env, "step", "total env.step"),
        ]
        for owner, attr, label in patches:
            stack.enter_context(timers.patch(owner, attr, label))
        for action in actions:
            env.step(action)
    env.close()
    return {k: 1e3 * v / steps for k, v in timers.total.items()}


def bench_profile(args: argparse.Namespace) -> None:
    print(f"machine: {describe_machine()}")
    for task in args.tasks:
        runs: dict[str, list[dict[str, float]]] = {"today": [], "fast": [], "fast_profile": []}
        for _ in range(args.repeats):
            for name in runs:
                profile = "fast" if name == "fast_profile" else "full"
                runs[name].append(profile_step(task, name != "today", args.steps, profile))
        labels = sorted(
            {k for r in runs.values() for d in r for k in d}, key=lambda k: (k.startswith("total"), k)
        )
        print(
            f"\n{task}: ms per control step (median of {args.repeats} interleaved runs x {args.steps} steps)"
        )
        print("| component | today | fast | fast + render_profile=fast |")
        print("|---|---|---|---|")
        for label in labels:
            cells = [f"{np.median([d.get(label, 0.0) for d in runs[n]]):.2f}" for n in runs]
            print(f"| {label} | {' | '.join(cells)} |")


def resident_mb() -> float:
    """This process's resident set (VmRSS, Linux), in MB."""
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


def env_memory(task: str, steps: int) -> dict[str, float]:
    """Runs in a fresh process: resident memory before, with one and two envs, and after closing."""
    figures = {"imports": resident_mb()}
    built = []
    for label in ("first_env", "second_env"):
        env = OurEnv(task, POLICY_CAMERAS, fast=True)
        env.reset(SEED)
        rng = np.random.default_rng(SEED)
        for _ in range(steps):
            env.step(rng.uniform(-1, 1, size=7))
        built.append(env)
        figures[label] = resident_mb()
    data = built[0].env.robosuite_env.sim.data._data
    figures["arena_declared"] = built[0].env.robosuite_env.sim.model._model.narena / 2**20
    figures["arena_max_used"] = data.maxuse_arena / 2**20
    for env in built:
        env.close()
    del built, env
    gc.collect()
    figures["closed"] = resident_mb()
    return figures


def bench_memory(args: argparse.Namespace) -> None:
    print(f"machine: {describe_machine()}")
    print(f"our env (fast_step), the policy's two cameras, {IMAGE}x{IMAGE}, {args.steps} random steps; MB")
    print(
        "| task | process after imports | + first env | + second env | after closing both "
        "| MuJoCo arena declared | arena max used |"
    )
    print("|---|---|---|---|---|---|---|")
    spawn = multiprocessing.get_context("spawn")
    for task in args.tasks:
        with spawn.Pool(1) as pool:
            f = pool.apply(env_memory, (task, args.steps))
        print(
            f"| {task} | {f['imports']:.0f} | {f['first_env'] - f['imports']:.0f} "
            f"| {f['second_env'] - f['first_env']:.0f} | {f['closed']:.0f} "
            f"| {f['arena_declared']:.0f} | {f['arena_max_used']:.2f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="*", default=["lift", "grasp_lift_bread"])
    parser.add_argument(
        "--cameras", nargs="*", default=["none", "agentview", "policy"], choices=list(CAMERA_SETS)
    )
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--ablations", action="store_true", help="also time each optimisation alone")
    parser.add_argument("--vector", action="store_true", help="also 2 forkserver workers, today vs fast")
    parser.add_argument("--profile", action="store_true", help="time the parts of one control step instead")
    parser.add_argument("--memory", action="store_true", help="resident memory of one env instead")
    args = parser.parse_args()
    for task in args.tasks:
        envs.get_task(task)
    if args.memory:
        bench_memory(args)
    elif args.profile:
        bench_profile(args)
    else:
        bench_tables(args)


if __name__ == "__main__":
    main()
