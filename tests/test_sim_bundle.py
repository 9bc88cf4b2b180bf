"""benchmarks/sim_bundle.py builds a simulator bundle from which every shipped task builds, resets and
steps in a fresh interpreter that sees nothing but the bundle and the host's packages (torch, numpy, ...)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from vla_razor.envs import TASKS

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow  # records all 12 tasks under both render profiles, then builds each from the bundle: ~3 min
def test_bundle_builds_every_task(tmp_path: Path) -> None:
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    out = tmp_path / "bundle"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "sim_bundle.py"), "--out", str(out), "--python-version", here,
         "--verify"],
        capture_output=True, text=True, timeout=900, cwd=ROOT,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert set(manifest["verified"]["tasks"]) == set(TASKS)
    for task, result in manifest["verified"]["tasks"].items():
        assert result["shape"] == [64, 64, 3] and result["image_mean"] > 0, task
    assert {"mujoco", "robosuite", "gymnasium", "hydra-core"} <= set(manifest["wheels"])
    assert "torch" not in manifest["wheels"]
    assert manifest["pruned"]["removed_files"] > 0 and manifest["robosuite_assets_kept"]
    assert (tmp_path / "bundle.tar.gz").stat().st_size == manifest["archive"]["bytes"]
    assert "bundle size:" in proc.stdout and "carry limit" in proc.stdout
