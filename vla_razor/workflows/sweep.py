"""A study's sweep: each entry's run folder, its training overrides, and which of its checkpoints count.

Entries are validated before any compute (one line naming the bad key, trainer or warm start), and every
entry maps to a distinct run folder, which is also the name of its recorded study unit.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from vla_razor.checkpoints import expand_checkpoints, latest_checkpoint, list_checkpoints
from vla_razor.errors import BadInputError, MissingFileError
from vla_razor.evaluation.suite_spec import SuiteSpec
from vla_razor.file_checks import RETRAIN, read_yaml
from vla_razor.trainers.checkpoint import load_checkpoint
from vla_razor.trainers.common import on_save_schedule

log = logging.getLogger(__name__)

SFT_TRAINERS = ("bc", "bc_kl")
SWEEP_KEYS = ("trainer", "lr", "seed", "overrides", "warm_start")
TRAINERS = ("bc", "bc_kl", "ppo", "rft", "dagger")


def run_name(entry: dict[str, Any]) -> str:
    """The run folder (and study unit) name of a sweep entry: trainer, lr, seed (and its warm start)."""
    name = "_".join(f"{k}{entry[k]}" for k in ("lr", "seed") if k in entry)
    base = f"{entry['trainer']}_{name}" if name else str(entry["trainer"])
    return f"{base}_from-{entry['warm_start']}" if entry.get("warm_start") else base


def warm_start_policy(train_dir: Path, name: str) -> Path:
    """The last checkpoint of an earlier run of the sweep, the starting point of a warm-started run."""
    last = latest_checkpoint(train_dir / name)
    if last is None:
        raise MissingFileError(
            f"warm start {name!r} has no checkpoint in {str(train_dir / name)!r} (recorded on another machine?); "
            f"remove its unit from the study's runs/ to train it again here"
        )
    return last / "policy"


def train_overrides(
    entry: dict[str, Any], suite: SuiteSpec, pi0: str, train_dir: Path, demos: Path, extra: list[str]
) -> tuple[str, list[str]]:
    trainer = str(entry["trainer"])
    run_dir = train_dir / run_name(entry)
    # A warm-started run (e.g. PPO after a short BC, as RL4VLA does) starts from that run's last checkpoint;
    # the suite still measures its KL and forgetting against pi0, so the warm-up's cost is part of them.
    start = warm_start_policy(train_dir, str(entry["warm_start"])) if entry.get("warm_start") else pi0
    overrides = [
        f"trainer={trainer}",
        f"task={suite.new_task}",
        f"policy.pretrained={start}",
        f"out_dir={run_dir}",
        f"demos=[{demos}]",
        "trainer.keep_last=null",
    ]
    if "lr" in entry:
        overrides.append(f"trainer.lr={entry['lr']}")
    if "seed" in entry:
        overrides.append(f"seed={entry['seed']}")
    overrides += [str(o) for o in entry.get("overrides", [])] + list(extra)
    return str(run_dir), overrides


def check_entries(entries: list[dict[str, Any]], runs: list[str]) -> None:
    """Every entry valid, and every run (sweep or given) a distinct unit: two entries that map to one run
    folder would overwrite each other's checkpoints and record."""
    for entry in entries:
        _check_entry(entry)
    names = [Path(str(r)).name for r in runs]
    for i, entry in enumerate(entries):
        earlier = [run_name(e) for e in entries[:i]]
        if entry.get("warm_start") and entry["warm_start"] not in earlier:
            raise BadInputError(
                f"sweep entry {entry} warm-starts from {entry['warm_start']!r}, which is not an earlier entry; "
                f"earlier runs: {', '.join(earlier) or 'none'}"
            )
    names += [run_name(e) for e in entries]
    clashes = sorted({n for n in names if names.count(n) > 1})
    if clashes:
        raise BadInputError(
            f"sweep entries (or runs) {clashes} map to the same run folder; give them different lr or seed"
        )


def _check_entry(entry: dict[str, Any]) -> None:
    unknown = sorted(set(entry) - set(SWEEP_KEYS))
    if unknown:
        raise BadInputError(
            f"sweep entry {entry} has unknown key(s) {unknown}; valid: {', '.join(SWEEP_KEYS)}"
        )
    if entry.get("trainer") not in TRAINERS:
        raise BadInputError(
            f"sweep entry {entry} names trainer {entry.get('trainer')!r}; valid: {', '.join(TRAINERS)}"
        )


def scheduled_checkpoints(run_dir: str | Path, all_checkpoints: bool = True) -> list[tuple[str, Path]]:
    """The run's checkpoints on its save schedule: every ``save_every`` steps, each of ``save_at``, the last.

    A checkpoint written because the run was interrupted (Ctrl-C, a session that ended) is a resume
    point, not a point of the committed sweep design: recorded, it would give its run an extra point in
    every fit and frontier, and make the study depend on when it happened to be stopped.
    """
    checkpoints = expand_checkpoints([str(run_dir)], all_checkpoints)
    latest = latest_checkpoint(run_dir)
    assert latest is not None  # expand_checkpoints refused a run without checkpoints
    # The resolved config, not trainer_state.pt: that one also holds the optimizer state (GBs for a 7B model).
    trainer = read_yaml(latest / "config.yaml", RETRAIN).get("trainer") or {}
    total = trainer.get("num_iterations")
    if total is None:  # checkpoints written before the trainers shared one budget name
        return checkpoints
    kept = []
    for pid, path in checkpoints:
        step = int(pid.rsplit("step_", 1)[1])
        if on_save_schedule(step, int(total), trainer.get("save_every"), trainer.get("save_at")):
            kept.append((pid, path))
        else:
            log.info("%s was saved on an interruption, off the run's save schedule: not in the study", pid)
    return kept


def finished(run_dir: str | Path) -> bool:
    """Whether a run already trained its whole budget (a study resumed after it skips its training)."""
    if not list_checkpoints(run_dir):
        return False
    ckpt = load_checkpoint(run_dir)
    settings = ckpt.trainer_state.get("settings", {})
    done = ckpt.trainer_state.get("update", ckpt.trainer_state.get("step"))
    total = settings.get("num_iterations")
    if total is None:  # checkpoints written before the trainers shared one budget name
        total = settings.get("max_steps") or settings.get("total_updates") or settings.get("iterations")
    return total is not None and done >= total
