"""The installed library: build the wheel, install it into a fresh virtual environment, use it elsewhere.

An editable install hides packaging defects (configs or assets left out of the wheel, top-level names that
only import from the checkout). Here the package comes from the wheel alone: the fresh environment sees
the development environment's site-packages for the dependencies only (a path in a .pth file, so the
editable install's own .pth hook never runs), and every command runs from a directory outside the
repository.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# What a fresh clone holds besides the sources; never part of the build.
_NOT_SOURCES = {".git", ".venv", "build", "dist", "runs", "outputs", "multirun", "videos"}


def _copy_sources(dst: Path) -> Path:
    def ignore(directory: str, names: list[str]) -> set[str]:
        skip = {
            n
            for n in names
            if n in {"__pycache__", ".pytest_cache", ".ruff_cache"} or n.endswith(".egg-info")
        }
        if Path(directory) == REPO:
            skip |= {n for n in names if n in _NOT_SOURCES or n == "data"}  # /data/: demo files
        return skip

    shutil.copytree(REPO, dst, ignore=ignore)
    return dst


def _run(cmd: list[str], cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VLA_RAZOR_CONFIGS", "VIRTUAL_ENV"}}
    env["HYDRA_FULL_ERROR"] = "0"
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(python of a fresh venv holding only the vla-razor wheel, a working directory outside the repo)."""
    root = tmp_path_factory.mktemp("wheel")
    src = _copy_sources(root / "src")  # the build writes build/ into its source tree: not into ours
    dist = root / "dist"
    built = _run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(dist),
            str(src),
        ],
        root,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    assert "BuildBackendWarning" not in built.stderr, built.stderr[-3000:]
    (wheel,) = dist.glob("vla_razor-*.whl")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    done = _run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", str(wheel)], root
    )
    assert done.returncode == 0, done.stderr[-3000:]
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    # Dependencies from the development environment, after the fresh site-packages on sys.path.
    (site / "_dev_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    elsewhere = root / "elsewhere"
    elsewhere.mkdir()
    return python, elsewhere


def test_package_comes_from_the_wheel_and_envs_is_namespaced(installed) -> None:
    python, cwd = installed
    venv = python.parent.parent
    out = _run([str(python), "-c", "import vla_razor, vla_razor.envs; print(vla_razor.__file__)"], cwd)
    assert out.returncode == 0, out.stderr[-3000:]
    assert Path(out.stdout.strip()).is_relative_to(venv), out.stdout  # not the repository checkout
    bad = _run([str(python), "-c", "import envs"], cwd)
    assert bad.returncode != 0 and "No module named 'envs'" in bad.stderr


def test_committed_pi0_is_found_inside_the_installed_package(installed) -> None:
    python, cwd = installed
    code = (
        "from vla_razor.config import asset_path\n"
        "from vla_razor.policies import load_policy\n"
        "path = asset_path('pi0_tiny')\n"
        "policy = load_policy(path)\n"
        "print(path, policy.family, policy.model.config.text_config.hidden_size)\n"
    )
    out = _run([str(python), "-c", code], cwd)
    assert out.returncode == 0, out.stderr[-3000:]
    path, family, width = out.stdout.split()[-3:]
    assert Path(path).is_relative_to(python.parent.parent) and (family, width) == ("tiny", "192")


def test_cli_works_from_another_directory(installed) -> None:
    python, cwd = installed
    cli = str(python.parent / "vla-razor")  # the console script pip generated
    usage = _run([cli, "--help"], cwd)
    assert usage.returncode == 0 and "rollout" in usage.stdout, usage.stderr[-3000:]

    job = _run([cli, "train", "trainer=ppo", "--cfg", "job", "--resolve"], cwd)
    assert job.returncode == 0, job.stderr[-3000:]
    assert "num_iterations: 50" in job.stdout  # the packaged config and its registered schema
    pretrained = next(
        line.split(":", 1)[1].strip() for line in job.stdout.splitlines() if "pretrained:" in line
    )
    assert (
        Path(pretrained).is_relative_to(python.parent.parent)
        and Path(pretrained, "policy_config.json").is_file()
    )

    rollout = _run(
        [cli, "rollout", "task=lift", "policy=expert", "episodes=1", f"hydra.run.dir={cwd / 'h'}"], cwd
    )
    assert rollout.returncode == 0, rollout.stderr[-3000:]
    assert [v.name for v in (cwd / "videos").glob("*.mp4")] == ["lift_seed100000_success.mp4"]
