"""OpenVLA-7B's shape end to end on one GPU: real robosuite tasks through the rollout engine, the policy on
the GPU. One prepared command measures everything issue 23 asks for:

    python benchmarks/gpu_scale.py --out gpu_scale.json               # a GPU machine: 7B shape, bf16, LoRA r=32
    python benchmarks/gpu_scale.py --device cpu --size tiny           # every code path in seconds (CI test)

Sections (``--sections`` picks some; each one catches its own failure, records it and the next one runs):
- ``decode``: greedy actions/s at batch 1 and 64 for decode=eager|static|compiled (vla_razor/policies/
  decoding.py), LoRA unmerged and merged; and the accelerated decodes' agreement with the eager one in
  the policy's dtype (greedy tokens, log-probs of the same tokens);
- ``suite``: held-out-suite-style episodes/s of the 7B-shaped policy (greedy, play_episodes on the pool);
- ``ppo``: PPO env steps/s at 16, 32 and 64 envs (one iteration each, LoRA), the time split between
  simulator, decode and update, and peak GPU memory;
- ``update``: one PPO minibatch update with each lever (micro-batches, gradient checkpointing, fused AdamW):
  seconds and peak memory;
- ``workers``: the tiny pi0's suite episodes/s with 2, 4, 8 and 16 env workers (the engine's scaling);
- ``render``: env steps/s with the policy's camera under EGL (the GPU's driver where it has one) and
  Mesa's software renderers (EGL llvmpipe, OSMesa), each in its own process.

The figures go to stdout, one line each, and to ``--out`` as JSON (rewritten after every section, so a
run cut short keeps what it measured) with the card, the versions and the command. ``--budget-s`` is the
wall time the whole run may take: a section starts only with time left, and one that runs past the
budget is stopped and recorded as such.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import shlex
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import peft
import torch
import transformers

from vla_razor.policies import load_policy
from vla_razor.policies.decoding import DECODE_MODES
from vla_razor.policies.mini_openvla.build import build_mini_openvla
from vla_razor.policies.mini_openvla.configuration_mini_openvla import LLAMA2_7B
from vla_razor.policies.openvla import OpenVLAPolicy, set_language_model_attention
from vla_razor.rollouts import (
    EngineSettings,
    EngineStats,
    EnvPool,
    EpisodeJob,
    PoolVectorEnv,
    play_episodes,
    policy_env_kwargs,
)
from vla_razor.sampling import seeded_generator
from vla_razor.seeds import HELDOUT_SEED_START
from vla_razor.trainers.common import make_optimizer
from vla_razor.trainers.ppo import MinibatchData, PPOSettings, accumulate_minibatch, train_ppo

REPO = Path(__file__).resolve().parents[1]
PI0_TINY = REPO / "vla_razor" / "assets" / "pi0_tiny"
STATS = {"q01": [-1.0] * 7, "q99": [1.0] * 7, "mask": [True] * 6 + [False]}
TASK = "grasp_lift_can"  # PPO's task: the default suite's pick-and-place scene
SUITE_TASKS = ("lift", "door", "grasp_lift_can", "grasp_lift_bread")  # configs/suite/default.yaml
# bf16 log-probs of the same tokens from two decodes may differ this much (sum over 7 tokens): a 7B
# model's cached vs full-pass log-probs differed by 0.12-0.15 nats on an H200 (PPOSettings docs).
BF16_LOGPROB_TOLERANCE = 0.25
FP32_LOGPROB_TOLERANCE = 1e-3
SECTIONS = ("decode", "suite", "ppo", "update", "workers", "render")


@dataclass(frozen=True)
class Size:
    """How big each section runs: ``7b`` for a GPU, ``tiny`` for every code path on a CPU in seconds."""

    model: dict[str, Any]
    decode_modes: tuple[str, ...]
    decode_batches: tuple[int, ...]
    decode_repeats: int
    ppo_envs: tuple[int, ...]
    ppo_steps: int
    minibatch: int
    micro_batch: int
    suite_tasks: tuple[str, ...]
    suite_episodes: int
    horizon: int
    workers: tuple[int, ...]
    worker_episodes: int
    render_steps: int
    render_backends: tuple[str, ...]
    update_repeats: int


SIZES: dict[str, Size] = {
    "7b": Size(
        model={"vision_backbone": "vit", "text_config": LLAMA2_7B},
        decode_modes=DECODE_MODES,
        decode_batches=(1, 64),
        decode_repeats=5,
        ppo_envs=(16, 32, 64),
        ppo_steps=2,
        minibatch=32,
        micro_batch=8,
        suite_tasks=SUITE_TASKS,
        suite_episodes=64,
        horizon=20,
        workers=(2, 4, 8, 16),
        worker_episodes=32,
        render_steps=100,
        render_backends=("egl", "egl_llvmpipe", "osmesa"),
        update_repeats=2,
    ),
    # The mini OpenVLA's defaults (convolutional patch towers, a 2-layer Llama): seconds on a CPU.
    # torch.compile takes minutes on a small CPU; tests/policies/test_decoding.py checks that path (slow).
    "tiny": Size(
        model={},
        decode_modes=("eager", "static"),
        decode_batches=(1, 2),
        decode_repeats=1,
        ppo_envs=(2,),
        ppo_steps=2,
        minibatch=4,
        micro_batch=2,
        suite_tasks=(TASK,),  # PPO's env kind: the pool builds it once for both sections
        suite_episodes=2,
        horizon=3,
        workers=(1,),
        worker_episodes=1,
        render_steps=3,
        render_backends=("egl",),
        update_repeats=1,
    ),
}
# How each render backend is selected: environment variables for a fresh process.
RENDER_BACKENDS: dict[str, dict[str, str]] = {
    "egl": {"MUJOCO_GL": "egl", "PYOPENGL_PLATFORM": "egl"},
    # glvnd's Mesa vendor file: EGL through llvmpipe even where an NVIDIA EGL driver is installed.
    "egl_llvmpipe": {
        "MUJOCO_GL": "egl",
        "PYOPENGL_PLATFORM": "egl",
        "__EGL_VENDOR_LIBRARY_FILENAMES": "/usr/share/glvnd/egl_vendor.d/50_mesa.json",
        "LIBGL_ALWAYS_SOFTWARE": "1",
    },
    "osmesa": {"MUJOCO_GL": "osmesa", "PYOPENGL_PLATFORM": "osmesa"},
}
# Runs in a fresh process per render backend: one env with the policy's camera, timed steps, one JSON line.
RENDER_PROBE = """
import json, sys, time
import numpy as np
from vla_razor import envs
task, size, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
env = envs.make_env(task, cameras=("agentview",), image_size=size)
env.reset(seed=0)
renderer = None
try:
    from OpenGL import GL
    renderer = GL.glGetString(GL.GL_RENDERER).decode()
except Exception as err:
    renderer = f"unknown ({type(err).__name__})"
rng = np.random.default_rng(0)
start = time.perf_counter()
for _ in range(steps):
    env.step(rng.uniform(-1, 1, 7).astype(np.float32))
print(json.dumps({"steps_per_s": steps / (time.perf_counter() - start), "renderer": renderer}))
"""


class SectionTimeout(Exception):
    """A section ran past the run's budget."""


class Run:
    """The figures of one run, printed as they come and written to ``out`` after every section."""

    def __init__(self, out: Path | None, deadline: float) -> None:
        self.out = out
        self.deadline = deadline
        self.figures: dict[str, Any] = {}
        self.sections: dict[str, Any] = {}

    def report(self, key: str, value: Any, unit: str = "") -> None:
        self.figures[key] = value
        shown = f"{value:.4g}" if isinstance(value, float) else value
        print(f"{key}: {shown}{(' ' + unit) if unit else ''}", flush=True)

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def write(self) -> None:
        if self.out is not None:
            self.out.parent.mkdir(parents=True, exist_ok=True)
            doc = {"figures": self.figures, "sections": self.sections}
            self.out.write_text(json.dumps(doc, indent=2, default=str))

    def section(self, name: str, body: Callable[[], None], min_seconds: float) -> None:
        """Run ``body`` unless less than ``min_seconds`` are left; a failure or an overrun is recorded."""
        if self.left() < min_seconds:
            self.sections[name] = {"status": "skipped", "why": f"{self.left():.0f} s of budget left"}
            print(f"[{name}] skipped: {self.left():.0f} s of budget left", flush=True)
            self.write()
            return
        print(f"[{name}]", flush=True)
        start = time.perf_counter()
        try:
            with alarm(self.left()):
                body()
            status: dict[str, Any] = {"status": "ok"}
        except SectionTimeout:
            status = {"status": "stopped", "why": "ran past --budget-s"}
        except Exception as err:
            traceback.print_exc()
            status = {"status": "failed", "error": f"{type(err).__name__}: {err}".splitlines()[0]}
        status["seconds"] = round(time.perf_counter() - start, 2)
        self.sections[name] = status
        print(f"[{name}] {status['status']} in {status['seconds']} s", flush=True)
        self.write()


@contextlib.contextmanager
def alarm(seconds: float) -> Iterator[None]:
    """Raise SectionTimeout in this (main) thread after ``seconds``."""

    def expire(signum: int, frame: Any) -> None:
        raise SectionTimeout()

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 0.01))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_gib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None


def fake_batch(policy: Any, n: int, seed: int) -> Any:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, 224, 224, 3), dtype=np.uint8)
    instructions = ["grasp and lift the can", "open the door"] * n
    return policy.prepare({"agentview_image": images}, instructions[:n])


def build_openvla(size: Size, device: torch.device) -> OpenVLAPolicy:
    """A model of OpenVLA-7B's shape (random weights; tiny: the same code at toy width) under LoRA r=32."""
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    model, processor = build_mini_openvla(
        norm_stats={"fake": {"action": STATS}}, device=device, dtype=dtype, **size.model
    )
    set_language_model_attention(model, "sdpa")
    policy = OpenVLAPolicy.from_model(
        model,
        processor,
        {"model": "random-openvla", "lora": {"r": 32, "alpha": 16, "target_modules": "all-linear"}},
    )
    # A visible adapter update (a fresh one is zero): merged and unmerged decodes then differ in cost
    # and, in bf16, a little in tokens.
    torch.manual_seed(0)
    with torch.no_grad():
        for name, param in policy.named_parameters():
            if "lora_B" in name:
                param.normal_(0.0, 0.02)
    return policy


def seconds_per_call(fn: Callable[[], Any], device: torch.device, repeats: int) -> float:
    fn()  # warm-up: kernels, allocator, and for decode=compiled the compilation
    sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    sync(device)
    return (time.perf_counter() - start) / repeats


def section_decode(run: Run, policy: OpenVLAPolicy, size: Size) -> None:
    device = policy.device
    tolerance = BF16_LOGPROB_TOLERANCE if device.type == "cuda" else FP32_LOGPROB_TOLERANCE
    check = fake_batch(policy, 8, seed=1)
    policy.set_decode("eager")
    reference = policy.act(check, greedy=True)
    for mode in size.decode_modes:
        policy.set_decode(mode)
        for merged in (False, True):
            label = f"{mode}_{'merged' if merged else 'unmerged'}"
            with policy.merged_adapter() if merged else contextlib.nullcontext():
                for n in size.decode_batches:
                    batch = fake_batch(policy, n, seed=n)
                    seconds = seconds_per_call(
                        lambda batch=batch: policy.act(batch, greedy=True), device, size.decode_repeats
                    )
                    run.report(f"decode_{label}_actions_per_s_batch{n}", n / seconds, "actions/s")
                if mode != "eager" and not merged:
                    out = policy.act(check, greedy=True)
                    same = (out.token_ids == reference.token_ids).all(dim=1)
                    run.report(f"decode_{mode}_token_agreement", float(same.float().mean()))
                    # Log-probs compared on the rows whose tokens agree (the same 7 tokens scored).
                    gap = float((out.log_prob - reference.log_prob)[same].abs().max()) if same.any() else 0.0
                    run.report(f"decode_{mode}_max_logprob_gap", gap, "nats")
                    run.report(
                        f"decode_{mode}_within_tolerance",
                        bool(gap <= tolerance and same.float().mean() >= 0.9),
                    )
    policy.set_decode("eager")


def section_suite(run: Run, policy: OpenVLAPolicy, pool: EnvPool, size: Size) -> None:
    kwargs = {**policy_env_kwargs(policy), "horizon": size.horizon}
    tasks = size.suite_tasks
    jobs = [
        EpisodeJob({"task": tasks[i % len(tasks)], **kwargs}, HELDOUT_SEED_START + i)
        for i in range(size.suite_episodes)
    ]
    policy.set_decode("static")
    stats = EngineStats()
    start = time.perf_counter()
    played = play_episodes(policy, pool, jobs, stats=stats)
    wall = time.perf_counter() - start
    policy.set_decode("eager")
    run.report("suite_episodes", len(played))
    run.report("suite_horizon", size.horizon)
    run.report("suite_episodes_per_s", len(played) / wall, "episodes/s (env builds included)")
    run.report("suite_env_steps_per_s", stats.steps / wall, "steps/s")
    run.report("suite_policy_share", stats.policy_seconds / wall)


def section_ppo(run: Run, policy: OpenVLAPolicy, pool: EnvPool, size: Size, workdir: Path) -> None:
    device = policy.device
    # The suite's horizon: the same env kind, so the pool's envs serve both sections.
    kwargs = {"task": TASK, **policy_env_kwargs(policy), "horizon": size.horizon}
    policy.set_decode("static")  # the rollouts' decodes; "compiled" would compile once per batch shape
    for num_envs in size.ppo_envs:
        venv = PoolVectorEnv(pool, kwargs, num_envs)
        settings = PPOSettings(
            lr=1e-5,
            num_iterations=1,
            num_steps=size.ppo_steps,
            update_epochs=1,
            minibatch_size=size.minibatch,
            micro_batch_size=size.micro_batch,
            save_every=0,
            target_kl=None,
            skip_unrewarded=False,  # random weights never succeed: update the policy anyway
        )
        reset_peak(device)
        start = time.perf_counter()
        metrics = train_ppo(policy, venv, settings, workdir / f"ppo_{num_envs}", {}, progress=False)
        sync(device)
        wall = time.perf_counter() - start
        steps = num_envs * size.ppo_steps
        run.report(f"ppo_env_steps_per_s_{num_envs}envs", steps / wall, "env steps/s")
        for part in ("env", "policy", "update"):
            run.report(f"ppo_time_share_{part}_{num_envs}envs", metrics[f"total_time_share_{part}"])
        run.report(f"ppo_peak_gib_{num_envs}envs", peak_gib(device), "GiB")
        run.report(f"ppo_logprob_recompute_gap_{num_envs}envs", metrics["logprob_recompute_gap"], "nats")
    policy.set_decode("eager")


def section_update(run: Run, policy: OpenVLAPolicy, size: Size) -> None:
    """One minibatch update (forward, backward, AdamW step) per lever, on a fixed synthetic minibatch."""
    device = policy.device
    n = size.minibatch
    batch = fake_batch(policy, n, seed=7)
    out = policy.act(batch, generator=seeded_generator(0, device))
    rng = np.random.default_rng(0)
    data = MinibatchData(
        batch.to("cpu"),
        out.token_ids.cpu(),
        out.log_prob.float().cpu(),
        torch.as_tensor(rng.normal(size=n), dtype=torch.float32),
        out.value.float().cpu(),
        torch.as_tensor(rng.normal(size=n), dtype=torch.float32),
    )
    levers: dict[str, dict[str, Any]] = {
        "plain": {},
        "micro": {"micro_batch_size": size.micro_batch},
        "checkpointing": {"gradient_checkpointing": True},
        "fused": {"fused_optimizer": True},
        "all": {
            "micro_batch_size": size.micro_batch,
            "gradient_checkpointing": True,
            "fused_optimizer": True,
        },
    }
    params = [p for p in policy.parameters() if p.requires_grad]
    base = {"lr": 1e-6, "num_iterations": 1, "minibatch_size": n, "save_every": 0}
    for name, lever in levers.items():
        settings = PPOSettings(**base, **lever)
        lm = policy.model.language_model
        if settings.gradient_checkpointing:
            policy.enable_gradient_checkpointing()
        else:
            lm.gradient_checkpointing_disable()
        optimizer, _ = make_optimizer(params, settings.lr, 0.0, 0, 1, fused=settings.fused_optimizer)
        policy.train()

        def update(settings: PPOSettings = settings, optimizer: Any = optimizer) -> None:
            optimizer.zero_grad(set_to_none=True)
            accumulate_minibatch(policy, settings, data, pg_active=True)
            optimizer.step()

        reset_peak(device)
        try:
            seconds = seconds_per_call(update, device, size.update_repeats)
        finally:
            lm.gradient_checkpointing_disable()
            policy.eval()
        run.report(f"update_{name}_s_per_minibatch{n}", seconds, "s")
        run.report(f"update_{name}_peak_gib", peak_gib(device), "GiB")
        del optimizer


def section_workers(run: Run, device: torch.device, size: Size) -> None:
    """The tiny pi0 on the default suite's tasks with more and more env workers (the same episodes)."""
    policy = load_policy(PI0_TINY, device=str(device))
    kwargs = {**policy_env_kwargs(policy), "horizon": size.horizon}
    jobs = [
        EpisodeJob({"task": size.suite_tasks[i % len(size.suite_tasks)], **kwargs}, HELDOUT_SEED_START + i)
        for i in range(size.worker_episodes)
    ]
    for workers in size.workers:
        with EnvPool(EngineSettings(num_workers=workers, slots_per_worker=2)) as pool:
            start = time.perf_counter()
            warmup = [EpisodeJob(job.env_kwargs, job.seed + len(jobs)) for job in jobs[: 2 * workers]]
            play_episodes(policy, pool, warmup)  # every slot builds its envs
            run.report(f"workers_{workers}_warmup_s", time.perf_counter() - start, "s")
            stats = EngineStats()
            start = time.perf_counter()
            play_episodes(policy, pool, jobs, stats=stats)
            wall = time.perf_counter() - start
        run.report(f"workers_{workers}_episodes_per_s", len(jobs) / wall, "episodes/s")
        run.report(f"workers_{workers}_env_steps_per_s", stats.steps / wall, "steps/s")


def section_render(run: Run, size: Size) -> None:
    for backend in size.render_backends:
        env = {**os.environ, **RENDER_BACKENDS[backend]}
        command = [sys.executable, "-c", RENDER_PROBE, "lift", "224", str(size.render_steps)]
        try:
            proc = subprocess.run(
                command, env=env, capture_output=True, text=True, timeout=max(5.0, min(180.0, run.left() - 5))
            )
        except subprocess.TimeoutExpired:
            run.report(f"render_{backend}_error", "timed out")
            continue
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
        if proc.returncode != 0 or not lines:
            tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            run.report(f"render_{backend}_error", tail[:300])
            continue
        result = json.loads(lines[-1])
        run.report(
            f"render_{backend}_steps_per_s", result["steps_per_s"], "steps/s (lift, one 224 px camera)"
        )
        run.report(f"render_{backend}_renderer", result["renderer"])


# Without numba (the simulator bundle leaves it out: benchmarks/sim_bundle.py), robosuite's controller
# kernels run as Python and the culler takes its numpy path. Measured on the 2-core AMD EPYC of the
# README, 300 random-action steps per task, two policy cameras at 64 px, interleaved with numba.
NO_NUMBA_NOTE = (
    "env steps 1.5-1.7x slower than with numba where measured (2-core AMD EPYC: lift 16.6 -> 28.1 ms, "
    "grasp_lift_bread 26.0 -> 38.9 ms per step; ~10 ms of it robosuite's controller kernels as Python, "
    "~1 ms per culled render in numpy): simulator-bound figures here are pessimistic"
)


def describe(run: Run, device: torch.device, argv: list[str]) -> None:
    run.report("command", shlex.join([Path(sys.executable).name, *sys.argv[:1], *argv]))
    run.report("python", platform.python_version())
    run.report("torch", torch.__version__)
    run.report("transformers", transformers.__version__)
    run.report("peft", peft.__version__)
    for name in ("mujoco", "robosuite", "gymnasium"):
        # The distribution's version, without importing it here (robosuite must be configured first).
        spec = importlib.util.find_spec(name)
        run.report(name, spec.origin if spec is not None else "unavailable")
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            run.report(f"{name}_version", importlib.metadata.version(name))
    card = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    run.report("device_name", card)
    run.report("cpu_cores", len(os.sched_getaffinity(0)))
    run.report("mujoco_gl", os.environ.get("MUJOCO_GL", "(unset: egl)"))
    try:
        from numba import njit  # noqa: F401
    except ImportError:  # the simulator bundle's placeholder (benchmarks/sim_bundle.py)
        run.report("sim_kernels", "python/numpy (no numba)")
        run.report("sim_kernels_note", NO_NUMBA_NOTE)
    else:
        run.report("sim_kernels", "numba")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--size", choices=sorted(SIZES), default="7b")
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    parser.add_argument("--budget-s", type=float, default=540.0, help="stop cleanly within this wall time")
    parser.add_argument("--out", type=Path, default=None, help="write the figures here as JSON")
    args = parser.parse_args(argv)
    argv = sys.argv[1:] if argv is None else argv
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("error: --device cuda but torch sees no CUDA device; use --device cpu --size tiny")
    size = SIZES[args.size]
    run = Run(args.out, time.monotonic() + args.budget_s)
    describe(run, device, argv)
    wanted = [s for s in SECTIONS if s in args.sections]
    needs_model = {"decode", "suite", "ppo", "update"} & set(wanted)
    needs_pool = {"suite", "ppo"} & set(wanted)
    holder: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        if needs_model:

            def build() -> None:
                start = time.perf_counter()
                holder["policy"] = build_openvla(size, device)
                sync(device)
                run.report("openvla_build_s", time.perf_counter() - start, "s")
                run.report("openvla_parameters_billion", holder["policy"].num_parameters() / 1e9)

            run.section("build", build, min_seconds=10)
        if needs_pool:
            holder["pool"] = stack.enter_context(EnvPool())
        policy, pool = holder.get("policy"), holder.get("pool")
        bodies: dict[str, Callable[[], None]] = {
            "decode": lambda: section_decode(run, policy, size),
            "suite": lambda: section_suite(run, policy, pool, size),
            "ppo": lambda: section_ppo(run, policy, pool, size, Path(tmp)),
            "update": lambda: section_update(run, policy, size),
            "workers": lambda: section_workers(run, device, size),
            "render": lambda: section_render(run, size),
        }
        for name in wanted:
            if name in needs_model and policy is None:
                run.sections[name] = {"status": "skipped", "why": "the 7B-shaped model was not built"}
                continue
            run.section(name, bodies[name], min_seconds=5)
    run.write()
    failed = [name for name, s in run.sections.items() if s["status"] != "ok"]
    print(
        f"sections: {len(run.sections) - len(failed)} ok"
        + (f", not ok: {', '.join(failed)}" if failed else "")
    )


if __name__ == "__main__":
    main()
