"""Finding checkpoints: the read side of the checkpoint layout that ``trainers.checkpoint`` writes.

A run directory holds ``checkpoints/step_<N>/`` folders (each with ``policy/``, ``trainer_state.pt`` and
``config.yaml``) and a ``latest`` pointer file. Training, evaluation and the commands all resolve paths
the same way, so these helpers live beside the layout, below every one of them, and not in a trainer.
"""

from __future__ import annotations

from pathlib import Path

from vla_razor.errors import MissingFileError

LATEST = "latest"


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    root = Path(run_dir) / "checkpoints"
    return sorted(p for p in root.glob("step_*") if p.is_dir() and (p / "trainer_state.pt").is_file())


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    pointer = Path(run_dir) / "checkpoints" / LATEST
    if pointer.is_file():
        candidate = pointer.parent / pointer.read_text().strip()
        if (candidate / "trainer_state.pt").is_file():
            return candidate
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


def resolve_policy_dir(path: str | Path) -> Path:
    """Accept a policy folder, a checkpoint folder or a run folder; return the policy folder inside."""
    path = Path(path)
    if not path.exists():
        raise MissingFileError(f"checkpoint {str(path)!r} does not exist")
    if (path / "policy").is_dir():
        return path / "policy"
    if (path / "checkpoints").is_dir():
        latest = latest_checkpoint(path)
        if latest is None:
            raise MissingFileError(f"run directory {str(path)!r} has no checkpoints yet")
        return latest / "policy"
    return path


def expand_checkpoints(paths: list[str], all_checkpoints: bool) -> list[tuple[str, Path]]:
    """(id, policy dir) for every requested checkpoint; run dirs expand to their saved steps."""
    out: list[tuple[str, Path]] = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise MissingFileError(f"checkpoint {raw!r} does not exist")
        if (path / "checkpoints").is_dir():
            steps = list_checkpoints(path)
            if not steps:
                raise MissingFileError(f"run directory {raw!r} has no checkpoints")
            for step in steps if all_checkpoints else steps[-1:]:
                out.append((f"{path.name}/{step.name}", step / "policy"))
        else:
            policy_dir = resolve_policy_dir(path)
            name = f"{path.parent.name}/{path.name}" if path.name.startswith("step_") else path.name
            out.append((name, policy_dir))
    return out
