"""The append-only results store of one results folder, and what each results file records of its run.

Every finished episode is appended to ``episodes.jsonl`` at once, so an interrupted evaluation resumes
where it stopped; each policy's metrics go to ``policies.jsonl``. Every row carries the content hash of
the policy that produced it, so a changed checkpoint is re-evaluated, never reused by name, and a folder
refuses results of a second pi0 or of another suite.
"""

from __future__ import annotations

import json
import platform
import subprocess
from dataclasses import asdict
from importlib import metadata
from pathlib import Path
from typing import Any

from vla_razor.errors import BadInputError
from vla_razor.evaluation.identity import short_hash
from vla_razor.evaluation.suite_spec import SuiteSpec
from vla_razor.file_checks import REEVALUATE, read_json_object
from vla_razor.io_utils import ensure_writable_dir, write_json_atomic
from vla_razor.rollouts import SeededEpisode


def run_info() -> dict[str, Any]:
    """Package versions and the git commit, recorded in every results file."""
    versions = {}
    for pkg in ("vla-razor", "torch", "transformers", "peft", "robosuite", "mujoco", "gymnasium", "numpy"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    try:
        commit = (
            subprocess.run(
                ["git", "rev-parse", "HEAD"],
                capture_output=True,
                text=True,
                timeout=10,
                cwd=Path(__file__).resolve().parent,
            ).stdout.strip()
            or None
        )
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {"versions": versions, "git_commit": commit, "python": platform.python_version()}


PI0_IDENTITY_FILE = "pi0_identity.json"
# What the first hashed results folders called their pi0 record; read, never written. (A study folder's
# pi0.json is another file: the study's pi0 unit, evaluation.study.STUDY_PI0.)
LEGACY_PI0_IDENTITY_FILE = "pi0.json"


class ResultsStore:
    """The append-only episode log and the per-policy metric records of one results folder.

    Rows are keyed by (policy id, content hash): a policy id whose bytes changed (a re-trained run in the
    same folder) finds no rows and is evaluated afresh. One folder holds one suite and one pi0.
    """

    def __init__(
        self, out_dir: str | Path, suite: SuiteSpec, pi0_hash: str, render_profile: str = "full"
    ) -> None:
        self.dir = ensure_writable_dir(out_dir, what="results directory")
        self.suite = suite
        self.pi0_hash = pi0_hash
        suite_file = self.dir / "suite.json"
        # The render profile the episodes were played under belongs to what makes results comparable;
        # it is written only when not the full profile, so folders from before profiles stay valid.
        identity = suite.identity() | ({} if render_profile == "full" else {"render_profile": render_profile})
        if suite_file.is_file():
            existing = read_json_object(suite_file, REEVALUATE)
            if existing.get("render_profile", "full") != render_profile:
                raise BadInputError(
                    f"results folder {str(self.dir)!r} holds episodes rendered with render_profile="
                    f"{existing.get('render_profile', 'full')!r}, not {render_profile!r}; use another out_dir"
                )
            if existing != identity:
                raise BadInputError(
                    f"results folder {str(self.dir)!r} holds suite {existing.get('name')!r} with different settings; "
                    "use another out_dir (results of different suites must not be mixed)"
                )
        else:
            write_json_atomic(suite_file, identity)
        recorded = self._recorded_pi0()
        if recorded is None:
            if any(
                (self.dir / name).exists() for name in ("episodes.jsonl", "policies.jsonl", "kl_states.npz")
            ):
                raise BadInputError(
                    f"results folder {str(self.dir)!r} holds results that predate content hashes (no record of "
                    "their pi0); use another out_dir"
                )
            write_json_atomic(self.dir / PI0_IDENTITY_FILE, {"hash": pi0_hash})
        elif recorded != pi0_hash:
            raise BadInputError(
                f"results folder {str(self.dir)!r} holds results of another pi0 "
                f"({short_hash(recorded)}, this pi0 is {short_hash(pi0_hash)}); use another out_dir "
                "(results of different pi0s must not be mixed)"
            )
        self.episodes_file = self.dir / "episodes.jsonl"
        self.metrics_file = self.dir / "policies.jsonl"

    def _recorded_pi0(self) -> str | None:
        for name in (PI0_IDENTITY_FILE, LEGACY_PI0_IDENTITY_FILE):
            path = self.dir / name
            if path.is_file():
                return str(read_json_object(path, REEVALUATE)["hash"])
        return None

    def finished(self, policy_id: str, policy_hash: str, task: str) -> dict[int, SeededEpisode]:
        done: dict[int, SeededEpisode] = {}
        for row in _read_jsonl(self.episodes_file):
            if row["policy"] == policy_id and row.get("hash") == policy_hash and row["task"] == task:
                done[int(row["seed"])] = SeededEpisode(
                    int(row["seed"]), bool(row["success"]), int(row["length"]), row.get("sim_error")
                )
        return done

    def append_episode(self, policy_id: str, policy_hash: str, task: str, episode: SeededEpisode) -> None:
        _append_line(
            self.episodes_file, {"policy": policy_id, "hash": policy_hash, "task": task, **asdict(episode)}
        )

    def policy_record(self, policy_id: str, policy_hash: str) -> dict[str, Any] | None:
        found = None
        for row in _read_jsonl(self.metrics_file):
            if row["policy"] == policy_id and row.get("hash") == policy_hash:
                found = row
        return found

    def append_policy_record(self, record: dict[str, Any]) -> None:
        if "hash" not in record:
            raise ValueError("a policy record must carry the policy's content hash")
        _append_line(self.metrics_file, record)


def _append_line(path: Path, row: dict[str, Any]) -> None:
    """Append one JSON line; a line left unterminated by a kill is closed first, never extended."""
    prefix = ""
    if path.is_file() and path.stat().st_size:
        with open(path, "rb") as fh:
            fh.seek(-1, 2)
            prefix = "" if fh.read(1) == b"\n" else "\n"
    try:
        with open(path, "a") as fh:
            fh.write(prefix + json.dumps(row) + "\n")
            fh.flush()
    except OSError as exc:
        if exc.filename is None:  # a failed write() names no file (a full disk): name the log
            raise OSError(exc.errno, exc.strerror, str(path)) from exc
        raise


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:  # a line cut by a kill mid-write: that episode simply re-runs
            continue
    return rows
