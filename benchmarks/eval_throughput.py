"""Evaluation throughput: the rollout engine vs the previous evaluation path, side by side in one run.

    python benchmarks/eval_throughput.py [--episodes 20] [--old-commit 38c6b32] [--old-dir /tmp/old_eval]

Both paths run the whole held-out suite as ``vla-razor eval`` does (configs/suite/default.yaml with
N episodes per task, KL states included, no videos) on pi0 (vla_razor/assets/pi0_tiny) and two
checkpoints: a byte copy of pi0, and pi0 with a small random LoRA update. The previous path is the code of
``--old-commit`` (checked out into a temporary git worktree); each path runs in a fresh subprocess with its
own defaults, and the time is measured around its ``run_suite`` call. The script also checks that both
paths played the same episodes (success and length per policy, task and seed). The last line it prints
is the ratio, ``speed-up: N.Nx``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]

# Runs in each subprocess: the suite on pi0 + checkpoints, timed around run_suite; prints one JSON line.
RUNNER = """
import json, sys, time
from pathlib import Path
from omegaconf import OmegaConf
from vla_razor.config import config_dir
from vla_razor.evaluation.runner import EvalConfig, run_suite
from vla_razor.evaluation.suite_spec import SuiteSpec

def main():
    pi0, out, episodes, *ckpts = sys.argv[1:]
    cfg = OmegaConf.to_container(OmegaConf.load(config_dir() / "suite" / "default.yaml"))
    cfg = {k: v for k, v in cfg.items() if k != "num_envs"} | {"episodes": int(episodes)}
    suite = SuiteSpec(**{**cfg, "prior_tasks": tuple(cfg["prior_tasks"])})
    checkpoints = [(Path(c).name, Path(c)) for c in ckpts]
    start = time.perf_counter()
    run_suite(EvalConfig(pi0, suite, out, videos=0, progress=False), checkpoints)
    seconds = time.perf_counter() - start
    rows = [json.loads(l) for l in (Path(out) / "episodes.jsonl").read_text().splitlines()]
    print(json.dumps({"seconds": seconds, "episodes": len(rows)}))

if __name__ == "__main__":
    main()
"""


def make_checkpoints(pi0: Path, root: Path) -> list[Path]:
    """A byte copy of pi0, and pi0 plus a small random LoRA update (a stand-in for a fine-tune)."""
    from vla_razor.policies import load_policy

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


def old_worktree(commit: str, path: Path) -> Path:
    """The previous code, importable with PYTHONPATH=path (envs/ and configs/ linked into the package)."""
    if not path.exists():
        subprocess.run(["git", "worktree", "add", "--detach", str(path), commit], cwd=REPO, check=True)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=path, capture_output=True, text=True, check=True)
    expected = subprocess.run(
        ["git", "rev-parse", commit], cwd=REPO, capture_output=True, text=True, check=True
    )
    if head.stdout.strip() != expected.stdout.strip():
        raise SystemExit(
            f"error: {path} holds {head.stdout.strip()[:9]}, not {commit}; remove it or pass --old-dir"
        )
    for name in ("envs", "configs"):  # what the package's install mapping does for the installed code
        link = path / "vla_razor" / name
        if not link.exists():
            link.symlink_to(Path("..") / name)
    return path


def run_path(label: str, code_dir: Path, pi0: Path, out: Path, episodes: int, ckpts: list[Path]) -> dict:
    env = {**os.environ, "MUJOCO_GL": "egl", "PYOPENGL_PLATFORM": "egl"}
    env.pop("VLA_RAZOR_CONFIGS", None)
    if code_dir != REPO:  # the previous code shadows the installed package; the engine is the installed one
        env["PYTHONPATH"] = str(code_dir)
    script = out.parent / f"{label}_runner.py"
    script.write_text(RUNNER)
    print(f"running the {label} path ({code_dir}) ...", flush=True)
    done = subprocess.run(
        [sys.executable, str(script), str(pi0), str(out), str(episodes), *map(str, ckpts)],
        cwd=out.parent,
        env=env,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise SystemExit(f"error: the {label} path failed:\n{done.stderr[-3000:]}")
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
    parser.add_argument("--old-commit", default="38c6b32", help="the commit holding the previous path")
    parser.add_argument("--old-dir", type=Path, default=Path("/tmp/old_eval"), help="its temporary worktree")
    args = parser.parse_args()

    pi0 = REPO / "vla_razor" / "assets" / "pi0_tiny"
    old = old_worktree(args.old_commit, args.old_dir)
    with tempfile.TemporaryDirectory(prefix="eval_throughput_") as tmp:
        root = Path(tmp)
        ckpts = make_checkpoints(pi0, root)
        (root / "old").mkdir()
        (root / "new").mkdir()
        before = run_path("previous", old, pi0, root / "old" / "results", args.episodes, ckpts)
        after = run_path("engine", REPO, pi0, root / "new" / "results", args.episodes, ckpts)
    same = sum(before["rows"].get(k) == v for k, v in after["rows"].items())
    cores = len(os.sched_getaffinity(0))
    print(f"\nsuite: default, N = {args.episodes} per task, pi0 + 2 checkpoints (copy, LoRA), {cores} CPUs")
    print("| path | episodes | seconds | episodes/s |\n|---|---|---|---|")
    for label, r in (("previous (" + args.old_commit + ")", before), ("engine", after)):
        print(f"| {label} | {r['episodes']} | {r['seconds']:.1f} | {r['episodes'] / r['seconds']:.3f} |")
    print(f"same success and length in {same} of {len(after['rows'])} episodes")
    ratio = (after["episodes"] / after["seconds"]) / (before["episodes"] / before["seconds"])
    print(f"speed-up: {ratio:.1f}x")


if __name__ == "__main__":
    main()
