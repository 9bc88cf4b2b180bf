"""Simplified copies of render-only meshes, built once per machine and swapped into a model's XML.

A mesh is *render-only* when every geom that uses it neither collides (``contype="0"`` and
``conaffinity="0"``, written on the geom) nor carries mass (its body declares ``<inertial>``, or the
compiler's ``inertiagrouprange`` leaves out the geom's group). Only such meshes are swapped, so the
physics compiled from the XML is the one robosuite builds; everything else is kept as written.

Simplification is quadric edge collapse from ``fast-simplification`` on the mesh with its coincident
vertices welded (``trimesh``; the shipped OBJ files repeat each position once per normal and texture
coordinate, which would pin every seam). The result is written as binary STL into a cache folder
(``$VLA_RAZOR_CACHE/render_meshes``, default ``~/.cache/vla_razor/render_meshes``), under a name that
holds the source file's hash and the fraction, by a temporary file and a rename, so worker processes
that build the same mesh at once never read half a file. A fresh clone builds them on first use (about
2 s); nothing is committed but the manifest.

``render_meshes.json`` (beside this file) records the sha256 of every output for the shipped robots,
grippers and mounts: the same faces on every machine is what makes a policy trained on the ``fast``
profile see the same images elsewhere. A build that differs logs a warning, and
``tests/envs/test_render_profiles.py`` checks every entry.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import fast_simplification
import numpy as np
import trimesh

from vla_razor.envs._robosuite import robosuite
from vla_razor.envs.render_profiles import RenderProfile
from vla_razor.io_utils import atomic_path

log = logging.getLogger(__name__)

MANIFEST = Path(__file__).with_name("render_meshes.json")
# Bumped whenever the build below changes what it writes (the cache key includes it).
BUILD_VERSION = 1
# No simplified mesh goes below this many faces (a part kept recognisable however small the fraction).
MIN_TARGET_FACES = 32
ROBOSUITE_ASSETS = Path(robosuite.__file__).parent / "models" / "assets"


def cache_dir() -> Path:
    root = os.environ.get("VLA_RAZOR_CACHE") or Path.home() / ".cache" / "vla_razor"
    return Path(root) / "render_meshes"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@functools.cache
def _source_digest(path: Path) -> str:
    """A shipped mesh's hash, read once per process (every env built under a profile asks for it)."""
    return _sha256(path)


def source_key(path: Path) -> str:
    """A mesh file's name in the manifest: relative to robosuite's assets when it is one of them."""
    try:
        return path.resolve().relative_to(ROBOSUITE_ASSETS.resolve()).as_posix()
    except ValueError:
        return path.resolve().as_posix()


def welded_mesh(path: Path) -> trimesh.Trimesh:
    """The mesh's triangles with coincident vertices merged (normals and texture coordinates dropped:
    MuJoCo recomputes normals, and render-only meshes of the shipped models carry no textures)."""
    loaded = trimesh.load(path, force="mesh", process=False)
    return trimesh.Trimesh(vertices=np.asarray(loaded.vertices), faces=np.asarray(loaded.faces), process=True)


def simplified_stl(source: Path, fraction: float, min_faces: int) -> bytes | None:
    """Binary STL of ``source`` kept at ``fraction`` of its faces; None when it has ``<= min_faces``."""
    mesh = welded_mesh(source)
    faces = len(mesh.faces)
    if faces <= min_faces:
        return None
    target = max(MIN_TARGET_FACES, round(faces * fraction))
    points, triangles = fast_simplification.simplify(
        np.ascontiguousarray(mesh.vertices, dtype=np.float64),
        np.ascontiguousarray(mesh.faces, dtype=np.int64),
        target_count=target,
    )
    out = trimesh.Trimesh(vertices=points, faces=triangles, process=False)
    return out.export(file_type="stl")


@functools.cache
def _manifest() -> dict[str, dict[str, str]]:
    return json.loads(MANIFEST.read_text()) if MANIFEST.is_file() else {}


def simplified_mesh_path(source: Path, fraction: float, min_faces: int) -> Path | None:
    """The cached simplified copy of ``source`` (built now if missing); None if it is small enough."""
    source = Path(source)
    tag = profile_tag(RenderProfile("cache", mesh_fraction=fraction, mesh_min_faces=min_faces))
    digest = _source_digest(source)
    out = cache_dir() / f"{source.stem}_{digest[:16]}_{tag}.stl"
    small = out.with_suffix(".small")  # marker: the source needs no simplification
    if out.is_file():
        return out
    if small.is_file():
        return None
    data = simplified_stl(source, fraction, min_faces)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(small if data is None else out) as tmp:
        tmp.write_bytes(data or b"")
    if data is not None:
        _check_against_manifest(source, digest, tag, hashlib.sha256(data).hexdigest())
    return None if data is None else out


def _check_against_manifest(source: Path, source_sha: str, tag: str, out_sha: str) -> None:
    entry = _manifest().get(tag, {}).get(source_key(source))
    if entry is None:
        return
    if entry["source_sha256"] != source_sha:
        log.warning(
            "render mesh %s differs from the one the manifest knows (another robosuite version?): images "
            "under this render profile may differ from those its policies were trained on",
            source_key(source),
        )
    elif entry["sha256"] != out_sha:
        log.warning(
            "simplified render mesh %s differs from the manifest's on this machine: images under this "
            "render profile may differ slightly from those its policies were trained on",
            source_key(source),
        )


def _render_only_meshes(root: ET.Element) -> set[str]:
    """Names of the meshes that only render-only geoms use (see the module docstring)."""
    compiler = root.find("compiler")
    group_range = (0, 5)  # MuJoCo's default inertiagrouprange
    if compiler is not None and compiler.get("inertiagrouprange"):
        low, high = (int(v) for v in compiler.get("inertiagrouprange", "0 5").split())
        group_range = (low, high)
    render_only: dict[str, bool] = {}
    for body in root.iter("body"):
        has_inertial = body.find("inertial") is not None
        for geom in body.findall("geom"):
            mesh = geom.get("mesh")
            if mesh is None:
                continue
            no_contact = geom.get("contype") == "0" and geom.get("conaffinity") == "0"
            group = int(geom.get("group", "0"))
            massless = has_inertial or not group_range[0] <= group <= group_range[1]
            render_only[mesh] = render_only.get(mesh, True) and no_contact and massless
    # A mesh used by a worldbody geom (no body of its own) is never swapped: conservative.
    worldbody = root.find("worldbody")
    if worldbody is not None:
        for geom in worldbody.findall("geom"):
            if geom.get("mesh") is not None:
                render_only[geom.get("mesh", "")] = False
    return {name for name, ok in render_only.items() if ok}


def swapped_meshes(xml: str, profile: RenderProfile) -> dict[str, tuple[Path, Path]]:
    """Mesh name -> (source file, simplified file) for every mesh ``profile`` swaps in this model."""
    return _swaps(ET.fromstring(xml), profile)


def _swaps(root: ET.Element, profile: RenderProfile) -> dict[str, tuple[Path, Path]]:
    if profile.mesh_fraction is None:
        return {}
    render_only = _render_only_meshes(root)
    compiler = root.find("compiler")
    meshdir = Path(compiler.get("meshdir", ".") if compiler is not None else ".")
    swaps: dict[str, tuple[Path, Path]] = {}
    for mesh in root.iter("mesh"):
        name, file = mesh.get("name"), mesh.get("file")
        if name not in render_only or file is None:
            continue
        source = Path(file) if Path(file).is_absolute() else meshdir / file
        if not source.is_file():
            continue  # MuJoCo reports a missing file itself, with the model's own path
        simplified = simplified_mesh_path(source, profile.mesh_fraction, profile.mesh_min_faces)
        if simplified is not None:
            swaps[name] = (source, simplified)
    return swaps


def apply_profile_to_xml(xml: str, profile: RenderProfile) -> str:
    """The model XML with its render-only meshes swapped for simplified copies (as is for ``full``)."""
    if profile.mesh_fraction is None:
        return xml
    root = ET.fromstring(xml)  # parsed once: the swaps are found and written in the same tree
    swaps = _swaps(root, profile)
    if not swaps:
        return xml
    for mesh in root.iter("mesh"):
        if mesh.get("name") in swaps:
            mesh.set("file", str(swaps[mesh.get("name", "")][1]))
    return ET.tostring(root, encoding="unicode")


def profile_tag(profile: RenderProfile) -> str:
    """What names a profile's simplified meshes in the cache and the manifest."""
    return f"v{BUILD_VERSION}_f{profile.mesh_fraction:g}_m{profile.mesh_min_faces}"


def manifest_entries(xml: str, profile: RenderProfile) -> dict[str, dict[str, str | int]]:
    """The manifest's record of every mesh ``profile`` swaps in this model."""
    entries: dict[str, dict[str, str | int]] = {}
    for source, simplified in swapped_meshes(xml, profile).values():
        entries[source_key(source)] = {
            "source_sha256": _sha256(source),
            "sha256": _sha256(simplified),
            "faces": len(welded_mesh(source).faces),
        }
    return entries


@contextlib.contextmanager
def models_compiled_with(profile: RenderProfile) -> Iterator[None]:
    """Inside this block, every robosuite model is compiled with ``profile``'s meshes.

    robosuite compiles its model inside the env's constructor (``MjSim.from_xml_string``), before any
    of its XML hooks can be set from outside, so the one compile is redirected for the constructor's
    duration instead of compiling twice. Env construction is single-threaded in every process we run.
    """
    if profile.mesh_fraction is None:
        yield
        return
    sim_class = robosuite.utils.binding_utils.MjSim
    original = sim_class.__dict__["from_xml_string"]

    def from_xml_string(cls: type, xml: str) -> object:
        return original.__func__(cls, apply_profile_to_xml(xml, profile))

    sim_class.from_xml_string = classmethod(from_xml_string)
    try:
        yield
    finally:
        sim_class.from_xml_string = original
