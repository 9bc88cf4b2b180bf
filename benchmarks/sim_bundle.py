"""Build a minimal simulator bundle for a GPU machine that has torch, transformers, peft and timm but no
robosuite, MuJoCo, gymnasium or hydra, no internet, and room for about 64 MiB of brought files.

    python benchmarks/sim_bundle.py --out build/sim_bundle --python-version 3.12   # for the GPU host
    python benchmarks/sim_bundle.py --out build/sim_bundle_311 --python-version 3.11 --verify   # tested here

    # on the GPU host, from the repository root, with build/sim_bundle.tar.xz carried along:
    python -c "import tarfile; tarfile.open('build/sim_bundle.tar.xz').extractall('/tmp', filter='data')" \
      && PYTHONPATH=/tmp/sim_bundle/site python benchmarks/gpu_scale.py --budget-s 480 --out gpu_scale.json

What it does, reproducibly (the same wheels, by version and sha256, and the same pruning rules):
1. records what the shipped tasks need, in a subprocess of this environment: every task of
   ``vla_razor.envs.TASKS`` is built with the policy cameras under each render profile, reset and stepped,
   then ``benchmarks/gpu_scale.py`` is imported (what the GPU run imports at start-up); the asset files are
   the ones the compiled models name (``file*`` attributes of the robosuite model XML, which MuJoCo reads
   itself) plus every file Python opens under robosuite (an audit hook); the distributions are those of
   every module imported by then (a namespace package imported alone, e.g. ``google`` by accelerate's
   probe for ``google.colab``, does not count); the scipy subpackages likewise;
2. downloads the wheel of each needed distribution that the GPU host lacks (:data:`HOST_PROVIDED`) and
   that is not left out (:data:`LEFT_OUT`), at the version installed here, for ``--python-version``
   (binary wheels are per Python version: ``pip download --only-binary=:all: --python-version 3.12
   --platform manylinux...``), and unpacks them into ``<out>/site``;
3. prunes: robosuite's ``models/assets`` to the recorded files; scipy to the recorded subpackages (whole
   folders: ``_lib``, the top-level modules and ``scipy.libs`` always stay); ``tests`` folders,
   ``__pycache__``, stubs and C/Cython sources everywhere; each RECORD to the files left;
4. writes a placeholder module for ``cv2`` and ``numba`` (:data:`PLACEHOLDERS`): robosuite imports both at
   start-up but, on our path, never uses them (the OpenCV viewer; ``macros.ENABLE_NUMBA``, which
   ``vla_razor.envs`` turns off when numba does not import, and ``vla_razor.envs.culling``'s numpy path);
   using anything from them raises ImportError naming the bundle;
5. installs this project (its wheel, built from the working tree) into the same folder, so
   ``vla_razor.envs`` resolves as in a normal install;
6. writes ``<out>/manifest.json`` (wheels, versions, sha256, what was left out and pruned, sizes), a
   ``<out>.tar.xz`` to carry (xz preset 9e; the size a tar.gz would have is recorded too), and prints the
   manifest's summary.

Measured choices (Python 3.12 bundle; ``manifest.json`` has the figures of a build): opencv (~63 MB as a
tar.gz) and numba + llvmlite (~40 MB even as xz, so more than the rest of the bundle) are left out; the
cost is simulator speed without numba, an env step 1.5-1.7x slower on this machine (README, Benchmarks >
On one GPU; ``gpu_scale.py`` records ``sim_kernels`` in its JSON). scipy keeps the subpackages that
imports reach (``constants fft linalg ndimage optimize sparse spatial special``; transformers 5.x
imports nothing else from scipy on our path), dropping ~4 MB of xz. xz instead of gzip saves about a
third. robosuite's meshes stay as they are (the full render profile needs the originals; there is room).

Use it as ``PYTHONPATH=<out>/site python benchmarks/gpu_scale.py ...``. ``--verify`` (only when
``--python-version`` is this interpreter's) unpacks the archive and, in a fresh interpreter that sees
nothing else but torch and the other host packages, builds every task under each render profile with
both policy cameras, resets, steps and renders it, then imports ``benchmarks/gpu_scale.py``.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import importlib.metadata
import io
import json
import lzma
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
GPU_SCRIPT = REPO / "benchmarks" / "gpu_scale.py"  # what the bundle is for
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
# This project: installed into the bundle from its own wheel (step 5), not downloaded.
PROJECT = "vla-razor"
# Distributions the tasks import but never use on the bundle's path: not bundled (together about 120 MB of
# the compressed bundle). robosuite imports cv2 at start-up only for its OpenCV viewer, which our envs
# never open; numba (and llvmlite under it) compiles robosuite's controller kernels and our culling
# kernel, and both run without it: vla_razor.envs sets robosuite's macros.ENABLE_NUMBA from whether numba
# imports, and vla_razor.envs.culling has a numpy twin of its kernel (the same geoms, tested).
LEFT_OUT = {
    "opencv-python": "robosuite imports cv2 at start-up for its OpenCV viewer only, which the envs never open",
    "numba": "robosuite's kernels run as Python (macros.ENABLE_NUMBA is off without numba) and "
    "vla_razor.envs.culling uses its numpy path",
    "llvmlite": "only numba uses it",
}
# Import names that must still import (robosuite imports them unconditionally): a placeholder module each.
PLACEHOLDERS = {"cv2": "opencv-python", "numba": "numba"}
PLACEHOLDER_SOURCE = '''"""Placeholder for {module}, written by vla-razor's benchmarks/sim_bundle.py: the simulator bundle
leaves {dist} out ({why}).

``import {module}`` works (robosuite imports it at start-up); using anything from it raises ImportError.
"""

__vla_razor_placeholder__ = True


def __getattr__(name: str) -> object:
    if name.startswith("__") and name.endswith("__"):
        raise AttributeError(name)  # probes such as __wrapped__ or __path__: a plain missing attribute
    raise ImportError(
        f"{module}.{{name}}: {module} is a placeholder in vla-razor's simulator bundle "
        "(benchmarks/sim_bundle.py left {dist} out); install {dist} to use it"
    )
'''
# Removed from every bundled distribution: test suites, bytecode, stubs and C/Cython sources (nothing
# imports them at run time).
STRIP_DIRS = ("tests", "__pycache__")
STRIP_SUFFIXES = (".pyi", ".pyx", ".pxd", ".pxi", ".c", ".cpp", ".h", ".hpp")
PLATFORMS = ("manylinux2014_x86_64", "manylinux_2_17_x86_64", "manylinux_2_28_x86_64")
CARRY_LIMIT_MIB = 64

# Runs in a subprocess of this environment: builds every task under each render profile, then imports the
# GPU run's script (argv[1], benchmarks/gpu_scale.py: what it imports at start-up), then prints the
# assets, distributions and scipy subpackages it needed as one JSON line.
RECORDER = r"""
import importlib.util, json, sys, os, xml.etree.ElementTree as ET
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
spec = importlib.util.spec_from_file_location("gpu_scale", sys.argv[1])
module = sys.modules["gpu_scale"] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
import importlib.metadata
dists = importlib.metadata.packages_distributions()
modules = list(sys.modules)
# A namespace package imported alone (accelerate probes google.colab, which imports the google namespace
# that protobuf shares) needs nothing installed: only modules with a file, or a submodule, count.
used = {m.split(".")[0] for m in modules if getattr(sys.modules[m], "__file__", None) or "." in m}
needed = sorted({d for top in used for d in dists.get(top, [])})
scipy = sorted({m.split(".")[1] for m in list(sys.modules) if m.startswith("scipy.")})
print(json.dumps({"robosuite_files": files, "distributions": needed, "scipy_subpackages": scipy}))
"""

# Runs in a fresh interpreter that sees only the unpacked archive, the host stand-in and this repository:
# every task under each render profile, both policy cameras, built, reset, stepped and rendered; then the
# GPU run's script imported (argv[1]).
VERIFIER = r"""
import importlib.util, json, sys, time
import numpy as np
from vla_razor import envs
from vla_razor.envs import culling
from vla_razor.envs.render_profiles import RENDER_PROFILES
import cv2, mujoco, numba, robosuite, robosuite.macros, torch
where = {m.__name__: m.__file__ for m in (mujoco, robosuite, torch, envs, cv2, numba)}
results = {}
cameras = ("agentview", "robot0_eye_in_hand")
for task in sorted(envs.TASKS):
    for profile in sorted(RENDER_PROFILES):
        env = envs.make_env(task, cameras=cameras, image_size=64, render_profile=profile)
        obs, _ = env.reset(seed=0)
        start = time.perf_counter()
        for _ in range(3):
            obs, *_ = env.step(np.zeros(7, dtype=np.float32))
        images = [obs[f"{camera}_image"] for camera in cameras]
        results[f"{task}/{profile}"] = {
            "image_mean": [float(image.mean()) for image in images],
            "shape": [list(image.shape) for image in images],
            "step_s": (time.perf_counter() - start) / 3,
        }
        env.close()
spec = importlib.util.spec_from_file_location("gpu_scale", sys.argv[1])
module = sys.modules["gpu_scale"] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
print(json.dumps({
    "where": where,
    "placeholders": sorted(m.__name__ for m in (cv2, numba) if getattr(m, "__vla_razor_placeholder__", False)),
    "robosuite_numba": robosuite.macros.ENABLE_NUMBA,
    "culling_numba": culling.NUMBA,
    "tasks": results,
}))
"""


def normalise(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def record_needs(python: str) -> dict[str, Any]:
    """The robosuite files and the distributions the shipped tasks need (a subprocess of ``python``)."""
    proc = subprocess.run(
        [python, "-c", RECORDER, str(GPU_SCRIPT)],
        capture_output=True,
        text=True,
        cwd=tempfile.gettempdir(),
        check=False,
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


def write_placeholders(site: Path) -> None:
    """A placeholder module for each left-out import name (:data:`PLACEHOLDERS`)."""
    for module, dist in sorted(PLACEHOLDERS.items()):
        source = PLACEHOLDER_SOURCE.format(module=module, dist=dist, why=LEFT_OUT[dist])
        (site / f"{module}.py").write_text(source)


def prune_scipy(site: Path, keep: list[str]) -> list[str]:
    """Delete scipy's subpackages that nothing imported while recording (whole folders only; its
    top-level modules, ``_lib`` and ``scipy.libs`` stay). Returns the removed ones."""
    removed = []
    for folder in sorted((site / "scipy").iterdir()):
        if folder.is_dir() and folder.name not in keep and folder.name != "_lib":
            shutil.rmtree(folder)
            removed.append(folder.name)
    return removed


def strip(site: Path) -> dict[str, int]:
    """Delete :data:`STRIP_DIRS` folders and :data:`STRIP_SUFFIXES` files everywhere in the bundle;
    bytes removed per kind."""
    removed: dict[str, int] = {}
    for path in sorted(site.rglob("*"), key=lambda p: len(p.parts)):
        if path.is_dir() and path.name in STRIP_DIRS:
            removed[path.name] = removed.get(path.name, 0) + folder_bytes(path)
            shutil.rmtree(path)
        elif path.is_file() and path.suffix in STRIP_SUFFIXES:
            removed[path.suffix] = removed.get(path.suffix, 0) + path.stat().st_size
            path.unlink()
    return removed


def rewrite_records(site: Path) -> None:
    """Each wheel's RECORD lists only the files still there (importlib.metadata reads it for ``files()``)."""
    for record in sorted(site.glob("*.dist-info/RECORD")):
        with open(record, newline="") as handle:
            rows = [row for row in csv.reader(handle) if row and (site / row[0]).is_file()]
        with open(record, "w", newline="") as handle:
            csv.writer(handle, lineterminator="\n").writerows(rows)


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


def verify(archive: Path) -> dict[str, Any]:
    """Every task built, reset, stepped and rendered (both profiles, both policy cameras) from the unpacked
    archive by a fresh interpreter that sees only the bundle and the host's packages; then the GPU run's
    script imported there."""
    with tempfile.TemporaryDirectory() as tmp:
        with tarfile.open(archive) as tar:
            tar.extractall(tmp, filter="data")
        site = next(Path(tmp).glob("*/site"))
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
            [str(python), "-S", "-c", VERIFIER, str(GPU_SCRIPT)],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp,
            check=False,
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
            result["where"][module] = str(Path(path).relative_to(tmp)) if inside else path
    return result


def write_archive(site: Path, name: str, archive: Path) -> int:
    """``site`` as ``<name>/site`` in a reproducible tar.xz (xz preset 9e); returns the size a tar.gz
    (level 9) of the same files would have, for the record."""
    with tarfile.open(archive, "w:xz", preset=9 | lzma.PRESET_EXTREME) as tar:
        tar.add(site, arcname=f"{name}/site", filter=_reproducible)
    counter = _ByteCounter()
    with tarfile.open(fileobj=counter, mode="w:gz", compresslevel=9) as tar:
        tar.add(site, arcname=f"{name}/site", filter=_reproducible)
    return counter.count


class _ByteCounter(io.RawIOBase):
    """A write-only file that only counts what it is given."""

    def __init__(self) -> None:
        self.count = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.count += len(data)
        return len(data)


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
        if normalise(name) not in HOST_PROVIDED | {PROJECT, *LEFT_OUT}
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
            "left_out": {name: why for name, why in LEFT_OUT.items()},
            "placeholders": PLACEHOLDERS,
            "robosuite_assets_kept": needs["robosuite_files"],
        }
    manifest["pruned"] = prune_assets(site, needs["robosuite_files"])
    manifest["scipy_subpackages_removed"] = prune_scipy(site, needs["scipy_subpackages"])
    # The tiny pi0's weights travel with the repository (benchmarks load them from there).
    shutil.rmtree(site / "vla_razor" / "assets" / "pi0_tiny", ignore_errors=True)
    manifest["stripped_bytes"] = strip(site)
    rewrite_records(site)
    write_placeholders(site)
    sizes = {
        top.name: folder_bytes(top) if top.is_dir() else top.stat().st_size for top in sorted(site.iterdir())
    }
    manifest["bytes"] = sizes
    manifest["total_bytes"] = sum(sizes.values())
    archive = out.with_name(out.name + ".tar.xz")
    gz_bytes = write_archive(site, out.name, archive)
    manifest["archive"] = {"file": archive.name, "bytes": archive.stat().st_size, "tar_gz_bytes": gz_bytes}
    if args.verify:
        manifest["verified"] = verify(archive)
    print(f"bundle for Python {args.python_version}: {out}")
    for name, info in sorted(manifest["wheels"].items()):
        info["bytes"] = dist_bytes(site, name)
        print(f"  {name}=={info['version']}  {info['bytes'] / 2**20:.1f} MiB")
    print(f"  left out, a placeholder module instead: {', '.join(sorted(LEFT_OUT))}")
    print(
        f"  robosuite assets kept: {len(needs['robosuite_files'])} files ({manifest['pruned']['removed_files']} pruned)"
    )
    print(f"  scipy subpackages removed: {', '.join(manifest['scipy_subpackages_removed'])}")
    total = manifest["total_bytes"] / 2**20
    xz_mib = archive.stat().st_size / 2**20
    print(
        f"bundle size: {total:.1f} MiB unpacked, {xz_mib:.1f} MiB as {archive.name} "
        f"({gz_bytes / 2**20:.1f} MiB as a tar.gz)"
    )
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2))
    if args.verify:
        verified = manifest["verified"]
        print(
            f"verified: {len(verified['tasks'])} task/profile pairs built, reset, stepped and rendered from the "
            f"unpacked archive (placeholders: {', '.join(verified['placeholders'])}; robosuite numba "
            f"{verified['robosuite_numba']}, culling numba {verified['culling_numba']})"
        )
    over = xz_mib - CARRY_LIMIT_MIB
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
