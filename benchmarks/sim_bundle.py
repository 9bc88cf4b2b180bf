"""Build a minimal simulator bundle for a GPU machine that has torch, transformers, peft and timm but no
robosuite, MuJoCo, gymnasium or hydra, no internet, and room for about 64 MiB of brought packages.

    python benchmarks/sim_bundle.py --out build/sim_bundle                        # for Python 3.12 (GPU host)
    python benchmarks/sim_bundle.py --out build/sim_bundle_311 --python-version 3.11 --verify   # tested here

What it does, reproducibly (the same wheels, by version and sha256, and the same pruning rule):
1. records what the shipped tasks need, in a subprocess of this environment: every task of
   ``vla_razor.envs.TASKS`` is built with the policy cameras under each render profile, reset and stepped;
   the asset files are the ones the compiled models name (``file*`` attributes of the robosuite model XML,
   which MuJoCo reads itself) plus every file Python opens under robosuite (an audit hook); the
   distributions are those of every module imported by then;
2. downloads the wheel of each needed distribution that the GPU host lacks, at the version installed here,
   for ``--python-version`` (binary wheels are per Python version: ``pip download --only-binary=:all:
   --python-version 3.12 --platform manylinux...``), and unpacks them into ``<out>/site``;
3. prunes robosuite's ``models/assets`` to the recorded files;
4. installs this project (its wheel, built from the working tree) into the same folder, so
   ``vla_razor.envs`` resolves as in a normal install;
5. writes ``<out>/manifest.json`` (wheels, versions, sha256, kept assets, sizes), a ``<out>.tar.gz`` to carry,
   and prints the manifest's summary.

Use it as ``PYTHONPATH=<out>/site python benchmarks/gpu_scale.py ...``. ``--verify`` (only when
``--python-version`` is this interpreter's) builds every task from the bundle in a fresh interpreter that
sees nothing else but torch and the other host packages, and resets and steps each one.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
import zipfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
ROBOSUITE_ASSETS = Path("robosuite") / "models" / "assets"
# What the GPU host already has (Python 3.12, torch, transformers, peft, timm and their dependencies):
# never bundled. Distribution names, normalised (lower case, '-' for '_').
HOST_PROVIDED = frozenset(
    [
        "torch",
        "numpy",
        "transformers",
        "peft",
        "timm",
        "torchvision",
        "tokenizers",
        "huggingface-hub",
        "safetensors",
        "pyyaml",
        "regex",
        "requests",
        "tqdm",
        "packaging",
        "filelock",
        "fsspec",
        "jinja2",
        "markupsafe",
        "networkx",
        "sympy",
        "mpmath",
        "typing-extensions",
        "psutil",
        "accelerate",
        "pillow",
        "certifi",
        "charset-normalizer",
        "idna",
        "urllib3",
        "hf-xet",
        "setuptools",
        "pip",
        "triton",
    ]
)
# This project: installed into the bundle from its own wheel (step 4), not downloaded.
PROJECT = "vla-razor"
PLATFORMS = ("manylinux2014_x86_64", "manylinux_2_17_x86_64", "manylinux_2_28_x86_64")
CARRY_LIMIT_MIB = 64

# Runs in a subprocess of this environment: builds every task under each render profile, then prints the
# assets and distributions it needed as one JSON line.
RECORDER = r"""
import json, sys, os, xml.etree.ElementTree as ET
from pathlib import Path
opened = set()
def hook(event, args):
    if event == "open" and isinstance(args[0], str):
        opened.add(os.path.abspath(args[0]))
sys.addaudithook(hook)
import numpy as np
from vla_razor import envs
from vla_razor.envs.render_profiles import RENDER_PROFILES
import robosuite
root = Path(robosuite.__file__).parent
named = set()
for task in sorted(envs.TASKS):
    for profile in sorted(RENDER_PROFILES):
        env = envs.make_env(task, cameras=("agentview", "robot0_eye_in_hand"), image_size=32, render_profile=profile)
        env.reset(seed=0)
        env.step(np.zeros(7, dtype=np.float32))
        for element in ET.fromstring(env.unwrapped._rs.model.get_xml()).iter():
            named.update(v for k, v in element.attrib.items() if k.startswith("file"))
        env.close()
files = sorted(
    str(Path(p).resolve().relative_to(root))
    for p in named | opened
    if Path(p).resolve().is_relative_to(root) and Path(p).is_file()
)
import importlib.metadata
dists = importlib.metadata.packages_distributions()
needed = sorted({d for m in list(sys.modules) for d in dists.get(m.split(".")[0], [])})
print(json.dumps({"robosuite_files": files, "distributions": needed}))
"""

# Runs in a fresh interpreter that sees only the bundle, the host stand-in and this repository.
VERIFIER = r"""
import json, sys
import numpy as np
from vla_razor import envs
import mujoco, robosuite, torch
where = {m.__name__: m.__file__ for m in (mujoco, robosuite, torch, envs)}
results = {}
for task in sorted(envs.TASKS):
    env = envs.make_env(task, cameras=("agentview",), image_size=64)
    obs, _ = env.reset(seed=0)
    obs, *_ = env.step(np.zeros(7, dtype=np.float32))
    results[task] = {"image_mean": float(obs["agentview_image"].mean()), "shape": list(obs["agentview_image"].shape)}
    env.close()
print(json.dumps({"where": where, "tasks": results}))
"""


def normalise(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def record_needs(python: str) -> dict[str, Any]:
    """The robosuite files and the distributions the shipped tasks need (a subprocess of ``python``)."""
    proc = subprocess.run(
        [python, "-c", RECORDER], capture_output=True, text=True, cwd=tempfile.gettempdir(), check=False
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"error: recording the tasks' needs failed: {proc.stderr.strip()[-2000:]}")
    return json.loads(lines[-1])


def is_pure(name: str) -> bool:
    """Whether the installed distribution is pure Python (its wheel then fits any Python 3)."""
    wheel = importlib.metadata.distribution(name).read_text("WHEEL") or ""
    return "Root-Is-Purelib: true" in wheel


def download_wheels(pins: dict[str, str], python_version: str, dest: Path) -> dict[str, Path]:
    """One wheel per pinned distribution: binary ones for ``python_version`` and the Linux platforms
    (``pip download --only-binary``), pure-Python ones as pip builds them (some, e.g. hydra's antlr4
    runtime, ship only an sdist). pip's cache makes reruns fast."""
    dest.mkdir(parents=True, exist_ok=True)
    platforms = [arg for p in PLATFORMS for arg in ("--platform", p)]
    pure = sorted(f"{n}=={v}" for n, v in pins.items() if is_pure(n))
    binary = sorted(f"{n}=={v}" for n, v in pins.items() if not is_pure(n))
    pip = [sys.executable, "-m", "pip"]
    commands = [
        [*pip, "download", "--quiet", "--no-deps", "--only-binary=:all:", "--python-version", python_version,
         *platforms, "--dest", str(dest), *binary],
        [*pip, "wheel", "--quiet", "--no-deps", "--wheel-dir", str(dest), *pure],
    ]  # fmt: skip
    for command in commands:
        proc = subprocess.run(command, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise SystemExit(f"error: {' '.join(command[3:5])} failed: {proc.stderr.strip()[-2000:]}")
    wheels: dict[str, Path] = {}
    for wheel in sorted(dest.glob("*.whl")):
        name = normalise(wheel.name.split("-")[0])
        if name in pins:
            wheels[name] = wheel
    missing = sorted(set(pins) - set(wheels))
    if missing:
        raise SystemExit(f"error: no wheel downloaded for {missing} (Python {python_version})")
    return wheels


def build_project_wheel(dest: Path) -> Path:
    """This repository's wheel (what a normal install of the working tree puts in site-packages)."""
    dest.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
        "--wheel-dir", str(dest), str(REPO),
    ]  # fmt: skip
    proc = subprocess.run(command, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"error: building the vla-razor wheel failed: {proc.stderr.strip()[-2000:]}")
    return next(dest.glob("vla_razor-*.whl"))


def unpack(wheel: Path, site: Path) -> None:
    """A wheel's files into ``site`` as pip would lay them out (``*.data/{purelib,platlib}`` at the top)."""
    with zipfile.ZipFile(wheel) as archive:
        for member in archive.infolist():
            parts = Path(member.filename).parts
            if parts[0].endswith(".data"):
                if len(parts) < 3 or parts[1] not in ("purelib", "platlib"):
                    continue  # scripts, headers, data: not needed to import
                parts = parts[2:]
            target = site.joinpath(*parts)
            if member.is_dir():
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(member) as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out)
            mode = (member.external_attr >> 16) & 0o777
            if mode:
                target.chmod(mode)


def prune_assets(site: Path, keep: list[str]) -> dict[str, int]:
    """Delete every file under robosuite's models/assets that the tasks never load."""
    root = site / "robosuite"
    kept = {root / k for k in keep}
    removed = removed_bytes = 0
    for path in sorted((site / ROBOSUITE_ASSETS).rglob("*")):
        if path.is_file() and path not in kept:
            removed_bytes += path.stat().st_size
            path.unlink()
            removed += 1
    for folder in sorted((site / ROBOSUITE_ASSETS).rglob("*"), reverse=True):
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
    return {"removed_files": removed, "removed_bytes": removed_bytes}


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def host_stand_in(root: Path) -> Path:
    """A folder of links to this environment's host-provided packages (torch, numpy, ...): what the GPU
    machine has, and nothing it lacks."""
    purelib = Path(sysconfig.get_paths()["purelib"])
    root.mkdir(parents=True, exist_ok=True)
    for dist in importlib.metadata.distributions():
        if normalise(dist.metadata["Name"]) not in HOST_PROVIDED:
            continue
        for top in (dist.read_text("top_level.txt") or "").split() or [dist.metadata["Name"]]:
            for candidate in (purelib / top, purelib / f"{top}.py"):
                if candidate.exists() and not (root / candidate.name).exists():
                    (root / candidate.name).symlink_to(candidate)
        # Shared libraries some packages load from beside them (e.g. numpy.libs, torch's deps).
        for libs in purelib.glob(f"{normalise(dist.metadata['Name']).replace('-', '_')}*.libs"):
            if not (root / libs.name).exists():
                (root / libs.name).symlink_to(libs)
        info = Path(str(dist._path))  # type: ignore[attr-defined]
        if not (root / info.name).exists():
            (root / info.name).symlink_to(info)
    return root


def verify(site: Path) -> dict[str, Any]:
    """Every task built, reset and stepped from the bundle by a fresh interpreter that sees only the
    bundle and the host's packages."""
    with tempfile.TemporaryDirectory() as tmp:
        host = host_stand_in(Path(tmp) / "host")
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", tmp),
            "PYTHONPATH": f"{site}{os.pathsep}{host}",
            "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl"),
        }
        # -S: no site-packages at all (neither this venv's nor the system's); -I is not used, as it would
        # also drop PYTHONPATH.
        python = Path(sys.base_prefix) / "bin" / f"python{sys.version_info.major}.{sys.version_info.minor}"
        proc = subprocess.run(
            [str(python), "-S", "-c", VERIFIER], capture_output=True, text=True, env=env, cwd=tmp, check=False
        )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"error: the bundle does not build the tasks: {proc.stderr.strip()[-3000:]}")
    result = json.loads(lines[-1])
    for module, path in result["where"].items():
        inside = Path(path).resolve().is_relative_to(site.resolve())
        if inside == (module == "torch"):
            raise SystemExit(
                f"error: {module} was imported from {path}: the check does not isolate the bundle"
            )
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "build" / "sim_bundle")
    parser.add_argument("--python-version", default="3.12", help="the GPU host's Python (binary wheels)")
    parser.add_argument("--wheel-cache", type=Path, default=None, help="keep downloaded wheels here")
    parser.add_argument("--verify", action="store_true", help="build every task from the bundle")
    args = parser.parse_args(argv)
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    if args.verify and args.python_version != here:
        raise SystemExit(
            f"error: --verify needs --python-version {here} (this interpreter), got {args.python_version}"
        )
    needs = record_needs(sys.executable)
    pins = {
        normalise(name): importlib.metadata.version(name)
        for name in needs["distributions"]
        if normalise(name) not in HOST_PROVIDED and normalise(name) != PROJECT
    }
    out = args.out.resolve()
    if out.exists():
        shutil.rmtree(out)
    site = out / "site"
    site.mkdir(parents=True)
    with tempfile.TemporaryDirectory() as tmp:
        cache = args.wheel_cache or Path(tmp) / "wheels"
        wheels = download_wheels(pins, args.python_version, cache)
        project = build_project_wheel(Path(tmp) / "project")
        for wheel in [*wheels.values(), project]:
            unpack(wheel, site)
        manifest: dict[str, Any] = {
            "python_version": args.python_version,
            "wheels": {
                name: {"version": pins[name], "file": w.name, "sha256": sha256(w)}
                for name, w in wheels.items()
            },
            "project_wheel": project.name,
            "host_provided": sorted(HOST_PROVIDED),
            "robosuite_assets_kept": needs["robosuite_files"],
        }
    manifest["pruned"] = prune_assets(site, needs["robosuite_files"])
    # The tiny pi0's weights travel with the repository (benchmarks load them from there).
    shutil.rmtree(site / "vla_razor" / "assets" / "pi0_tiny", ignore_errors=True)
    for cached in site.rglob("__pycache__"):
        shutil.rmtree(cached)
    sizes = {
        top.name: folder_bytes(top) if top.is_dir() else top.stat().st_size for top in sorted(site.iterdir())
    }
    manifest["bytes"] = sizes
    manifest["total_bytes"] = sum(sizes.values())
    archive = out.with_name(out.name + ".tar.gz")
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(site, arcname=f"{out.name}/site", filter=_reproducible)
    manifest["archive"] = {"file": archive.name, "bytes": archive.stat().st_size}
    if args.verify:
        manifest["verified"] = verify(site)
    print(f"bundle for Python {args.python_version}: {out}")
    for name, info in sorted(manifest["wheels"].items()):
        info["bytes"] = dist_bytes(site, name)
        print(f"  {name}=={info['version']}  {info['bytes'] / 2**20:.1f} MiB")
    print(
        f"  robosuite assets kept: {len(needs['robosuite_files'])} files ({manifest['pruned']['removed_files']} pruned)"
    )
    total = manifest["total_bytes"] / 2**20
    print(
        f"bundle size: {total:.1f} MiB unpacked, {archive.stat().st_size / 2**20:.1f} MiB as {archive.name}"
    )
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2))
    if args.verify:
        print(
            f"verified: {len(manifest['verified']['tasks'])} tasks built, reset and stepped from the bundle"
        )
    over = archive.stat().st_size / 2**20 - CARRY_LIMIT_MIB
    print(
        f"carry limit {CARRY_LIMIT_MIB} MiB: "
        + (
            f"OVER by {over:.1f} MiB (see manifest bytes)"
            if over > 0
            else f"within, {-over:.1f} MiB to spare"
        )
    )


def dist_bytes(site: Path, dist: str) -> int:
    """Bytes on disk of the files a distribution's wheel installed (after pruning)."""
    total = 0
    for info in site.glob("*.dist-info"):
        if normalise(info.name.split("-")[0]) != dist:
            continue
        for line in (info / "RECORD").read_text().splitlines():
            path = site / line.split(",")[0]
            if line and path.is_file():
                total += path.stat().st_size
    return total


def _reproducible(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


if __name__ == "__main__":
    main()
