"""Whole-suite evaluation under the two render profiles: the same policy, the same code, one run.

    python benchmarks/eval_throughput.py [--episodes 20] [--policy vla_razor/assets/pi0_tiny] [--repeats 1]

Each pass runs the held-out suite as ``vla-razor eval`` does (configs/suite/default.yaml with N episodes
per task, KL states included, no videos) on pi0 and two checkpoints (a byte copy of pi0, and pi0 with a
small random LoRA update), in a fresh subprocess with ``render_profile=full`` or ``fast``; the time is
measured around its ``run_suite`` call. With ``--repeats R`` the passes alternate (full, fast, full,
...), so machine load hits both alike; the ratio is the median of per-repeat ratios. The physics is the
same under both profiles, so the episodes differ only where the policy acts differently on the images;
the script counts the episodes whose success and length agree, and gives the ratio per env step of the
recorded episodes beside the wall-time ratio. The last line it prints is the wall-time ratio,
``speed-up: N.NNx``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from vla_razor.machine import describe_machine
from vla_razor.policies import load_policy

REPO = Path(__file__).resolve().parents[1]
PROFILES = ("full", "fast")

# Runs in each subprocess: the suite on pi0 + checkpoints, timed around run_suite; prints one JSON line.
RUNNER = """
import json, sys, time
from pathlib import Path
from omegaconf import OmegaConf
from vla_razor.config import config_dir
from vla_razor.evaluation.runner import EvalConfig, run_suite
from vla_razor.evaluation.suite_spec import SuiteSpec

def main():
    pi0, out, episodes, profile, tasks, kl_states, *ckpts = sys.argv[1:]
    cfg = OmegaConf.to_container(OmegaConf.load(config_dir() / "suite" / "default.yaml"))
    cfg = cfg | {"episodes": int(episodes)}
    if kl_states:
        cfg |= {"kl_states": int(kl_states)}
    if tasks:
        cfg |= {"prior_tasks": tasks.split(",")}
    suite = SuiteSpec.from_mapping(cfg)  # the suite config's own pi0 entry is not part of the suite
    checkpoints = [(Path(c).name, Path(c)) for c in ckpts]
    config = EvalConfig(pi0, suite, out, videos=0, progress=False, render_profile=profile)
    start = time.perf_counter()
    run_suite(config, checkpoints)
    seconds = time.perf_counter() - start
    rows = [json.loads(l) for l in (Path(out) / "episodes.jsonl").read_text().splitlines()]
    print(json.dumps({"seconds": seconds, "episodes": len(rows)}))

if __name__ == "__main__":
    main()
"""


def make_checkpoints(pi0: Path, root: Path) -> list[Path]:
    """A byte copy of pi0, and pi0 plus a small random LoRA update (a stand-in for a fine-tune)."""
    copy = root / "pi0_copy"
    shutil.copytree(pi0, copy)
    lora = root / "pi0_lora"
    policy = load_policy(pi0, finetune="lora", lora={"r": 8, "alpha": 8})
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, param in policy.backbone.named_parameters():
            if "lora_B" in name:  # B starts at zero (no change); a small B moves the weights a little
                param.copy_(torch.randn(param.shape, generator=generator) * 0.02)
    policy.save_pretrained(lora)
    return [copy, lora]


def run_pass(profile: str, pi0: Path, out: Path, args: argparse.Namespace, ckpts: list[Path]) -> dict:
    script = out.parent / "runner.py"
    script.write_text(RUNNER)
    print(f"running the suite under render_profile={profile} ...", flush=True)
    done = subprocess.run(
        [
            *(sys.executable, str(script), str(pi0), str(out), str(args.episodes), profile),
            *(",".join(args.tasks), "" if args.kl_states is None else str(args.kl_states)),
            *map(str, ckpts),
        ],
        cwd=out.parent,
        env={k: v for k, v in os.environ.items() if k != "VLA_RAZOR_CONFIGS"},
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise SystemExit(f"error: the {profile} pass failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["rows"] = {
        (r["policy"], r["task"], r["seed"]): (r["success"], r["length"])
        for r in map(json.loads, (out / "episodes.jsonl").read_text().splitlines())
    }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--episodes", type=int, default=20, help="episodes per task and policy (N)")
    parser.add_argument("--policy", type=Path, default=REPO / "vla_razor" / "assets" / "pi0_tiny")
    parser.add_argument("--repeats", type=int, default=1, help="alternating passes per profile")
    parser.add_argument(
        "--tasks", nargs="*", default=[], help="prior tasks instead of the suite's (toy runs)"
    )
    parser.add_argument("--kl-states", type=int, default=None, help="instead of the suite's 256 (toy runs)")
    parser.add_argument("--checkpoints", type=int, default=2, choices=(0, 1, 2), help="beside pi0")
    args = parser.parse_args()
    passes: dict[str, list[dict]] = {p: [] for p in PROFILES}
    with tempfile.TemporaryDirectory(prefix="eval_throughput_") as tmp:
        root = Path(tmp)
        ckpts = make_checkpoints(args.policy, root)[: args.checkpoints]
        for repeat in range(args.repeats):
            for profile in PROFILES:
                out = root / f"{profile}_{repeat}" / "results"
                out.parent.mkdir()
                passes[profile].append(run_pass(profile, args.policy, out, args, ckpts))
    full, fast = passes["full"], passes["fast"]
    same = sum(full[0]["rows"].get(k) == v for k, v in fast[0]["rows"].items())
    print(f"\nmachine: {describe_machine()}")
    print(
        f"suite: default, N = {args.episodes} per task, {args.policy.name} + {len(ckpts)} checkpoint(s) (copy, LoRA)"
    )
    print(
        "| render profile | pass | episodes | env steps | seconds | episodes/s | env steps/s |\n"
        "|---|---|---|---|---|---|---|"
    )
    for profile in PROFILES:
        for i, r in enumerate(passes[profile]):
            steps = episode_steps(r)
            print(
                f"| {profile} | {i} | {r['episodes']} | {steps} | {r['seconds']:.1f} | "
                f"{r['episodes'] / r['seconds']:.3f} | {steps / r['seconds']:.1f} |"
            )
    print(f"same success and length under both profiles in {same} of {len(fast[0]['rows'])} episodes")
    # Episodes whose length differs between profiles make the wall-time ratio a mix of speed and behaviour;
    # the per-step ratio is the speed alone (both count only the suite's recorded episodes).
    per_step = statistics.median(
        (a["seconds"] / episode_steps(a)) / (b["seconds"] / episode_steps(b))
        for a, b in zip(full, fast, strict=True)
    )
    print(f"speed-up per env step of the suite's episodes: {per_step:.2f}x")
    ratio = statistics.median(a["seconds"] / b["seconds"] for a, b in zip(full, fast, strict=True))
    print(f"speed-up: {ratio:.2f}x")


def episode_steps(result: dict) -> int:
    """Env steps of the suite's recorded episodes in one pass."""
    return sum(length for _, length in result["rows"].values())


if __name__ == "__main__":
    main()
