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


@pytest.mark.slow  # records all 12 tasks under both render profiles, then builds each from the archive: ~4 min
def test_bundle_builds_every_task(tmp_path: Path) -> None:
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    out = tmp_path / "bundle"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "sim_bundle.py"), "--out", str(out), "--python-version", here,
         "--verify"],
        capture_output=True, text=True, timeout=1200, cwd=ROOT,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    manifest = json.loads((out / "manifest.json").read_text())
    verified = manifest["verified"]
    assert {key.split("/")[0] for key in verified["tasks"]} == set(TASKS)
    assert len(verified["tasks"]) == 2 * len(TASKS)  # both render profiles
    for key, result in verified["tasks"].items():
        assert result["shape"] == [[64, 64, 3], [64, 64, 3]] and min(result["image_mean"]) > 0, key
    # Left out, a placeholder instead; robosuite's kernels and the culler then run without numba.
    assert verified["placeholders"] == ["cv2", "numba"]
    assert verified["robosuite_numba"] is False and verified["culling_numba"] is False
    assert {"mujoco", "robosuite", "gymnasium", "hydra-core", "scipy"} <= set(manifest["wheels"])
    assert not {"torch", "numba", "llvmlite", "opencv-python"} & set(manifest["wheels"])
    assert "stats" in manifest["scipy_subpackages_removed"] and "tests" in manifest["stripped_bytes"]
    assert manifest["pruned"]["removed_files"] > 0 and manifest["robosuite_assets_kept"]
    archive = tmp_path / "bundle.tar.xz"
    assert archive.stat().st_size == manifest["archive"]["bytes"] < 56 * 2**20
    assert manifest["archive"]["tar_gz_bytes"] > manifest["archive"]["bytes"]
    assert "bundle size:" in proc.stdout and "carry limit" in proc.stdout
