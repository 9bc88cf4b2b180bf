"""Write or check the manifest of simplified render meshes (``render_meshes.json``).

    python -m vla_razor.envs.render_manifest            # check: rebuild every mesh, compare hashes
    python -m vla_razor.envs.render_manifest --write    # record the hashes of this build

The manifest covers every mesh that a render profile swaps in the built-in tasks' models (the Panda,
its gripper and mount). Checking rebuilds into a temporary cache, so it says whether *this* machine
builds the same faces as the machine that recorded them.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile

from vla_razor.envs.render_meshes import (
    MANIFEST,
    ROBOSUITE_ASSETS,
    manifest_entries,
    profile_tag,
    simplified_stl,
)
from vla_razor.envs.render_profiles import RENDER_PROFILES, RenderProfile
from vla_razor.envs.robosuite_env import RobosuiteTaskEnv
from vla_razor.envs.tasks import BUILTIN_TASKS
from vla_razor.io_utils import write_json_atomic

Manifest = dict[str, dict[str, dict[str, str | int]]]


def model_xml(task: str) -> str:
    """The XML robosuite compiles for a task, as robosuite ships it."""
    env = RobosuiteTaskEnv(task, use_camera=False)
    try:
        return env.unwrapped._rs.model.get_xml()
    finally:
        env.close()


def build_manifest(tasks: list[str], profiles: list[RenderProfile]) -> Manifest:
    """Every mesh the profiles swap in these tasks' models, with the hashes of its source and its copy."""
    xmls = {task: model_xml(task) for task in tasks}
    manifest: Manifest = {}
    for profile in profiles:
        if profile.mesh_fraction is None:
            continue
        entries = manifest.setdefault(profile_tag(profile), {})
        for xml in xmls.values():
            entries.update(manifest_entries(xml, profile))
    return {tag: dict(sorted(entries.items())) for tag, entries in manifest.items()}


def fresh_manifest() -> Manifest:
    """The manifest as this machine builds it now, in an empty cache."""
    previous = os.environ.get("VLA_RAZOR_CACHE")
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["VLA_RAZOR_CACHE"] = tmp
        try:
            return build_manifest(sorted(BUILTIN_TASKS), list(RENDER_PROFILES.values()))
        finally:
            if previous is None:
                os.environ.pop("VLA_RAZOR_CACHE", None)
            else:
                os.environ["VLA_RAZOR_CACHE"] = previous


def rebuilt_entries(recorded: Manifest) -> Manifest:
    """The recorded meshes rebuilt from their sources (no cache, no model compiled): cheap enough for
    the default tests, where :func:`fresh_manifest` also finds meshes the manifest lacks."""
    profiles = {profile_tag(p): p for p in RENDER_PROFILES.values() if p.mesh_fraction is not None}
    rebuilt: Manifest = {}
    for tag, entries in recorded.items():
        profile = profiles.get(tag)
        if profile is None or profile.mesh_fraction is None:
            continue  # a tag no profile uses any more: nothing builds it
        out = rebuilt.setdefault(tag, {})
        for key, entry in entries.items():
            source = ROBOSUITE_ASSETS / key
            data = simplified_stl(source, profile.mesh_fraction, profile.mesh_min_faces)
            out[key] = {
                "source_sha256": hashlib.sha256(source.read_bytes()).hexdigest(),
                "sha256": hashlib.sha256(data).hexdigest() if data is not None else "",
                "faces": entry["faces"],
            }
    return rebuilt


def differences(recorded: Manifest, built: Manifest) -> list[str]:
    """One line per mesh whose recorded and rebuilt hashes differ (or that only one side has)."""
    lines = []
    for tag in sorted(set(recorded) | set(built)):
        old, new = recorded.get(tag, {}), built.get(tag, {})
        for key in sorted(set(old) | set(new)):
            if old.get(key) != new.get(key):
                lines.append(f"{tag} {key}: recorded {old.get(key)} built {new.get(key)}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="record this build's hashes")
    args = parser.parse_args(argv)
    built = fresh_manifest()
    if args.write:
        write_json_atomic(MANIFEST, built)
        print(f"wrote {MANIFEST} ({sum(len(v) for v in built.values())} meshes)")
        return 0
    recorded = json.loads(MANIFEST.read_text())
    lines = differences(recorded, built)
    print("\n".join(lines) or f"all {sum(len(v) for v in built.values())} meshes match {MANIFEST.name}")
    return 1 if lines else 0


if __name__ == "__main__":
    sys.exit(main())
