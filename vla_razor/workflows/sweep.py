"""A study's sweep: each entry's run folder, its training overrides, and which of its checkpoints count.

Entries are validated before any compute (one line naming the bad key, trainer or warm start), and every
entry maps to a distinct run folder, which is also the name of its recorded study unit.

An entry's ``lr`` may be a rule instead of a number: ``lr: {best_of: bc}`` takes the learning rate of the
earlier ``bc`` entries whose runs reached the highest new-task success (``evaluation.lr_choice``, study 2's
rule for DAgger). It is resolved when the entry's turn comes, once every ``bc`` entry is recorded, so a
study's design, rule included, is committed before any result and runs to its end unattended.
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
BEST_OF = "best_of"  # lr: {best_of: TRAINER}
TRAINERS = ("bc", "bc_kl", "ppo", "rft", "dagger")


def lr_rule(entry: dict[str, Any]) -> str | None:
    """The trainer whose best learning rate the entry takes (``lr: {best_of: TRAINER}``), or None."""
    lr = entry.get("lr")
    return str(lr[BEST_OF]) if isinstance(lr, dict) else None


def with_lr(entry: dict[str, Any], lr: float) -> dict[str, Any]:
    """The entry with its learning-rate rule resolved to ``lr``."""
    return {**entry, "lr": lr}


def rule_inputs(entries: list[dict[str, Any]], index: int) -> list[dict[str, Any]]:
    """The entries a learning-rate rule at ``entries[index]`` reads: the earlier entries of its trainer
    (``check_entries`` makes sure each gives a number, so none is itself a rule). Empty without a rule."""
    trainer = lr_rule(entries[index])
    return [e for e in entries[:index] if trainer is not None and e["trainer"] == trainer]


def run_name(entry: dict[str, Any]) -> str:
    """The run folder (and study unit) name of a sweep entry: trainer, lr, seed (and its warm start); an
    unresolved learning-rate rule is named for what it takes (``dagger_lr-best-of-bc_seed0``)."""
    rule = lr_rule(entry)
    values = {**entry, "lr": f"-best-of-{rule}"} if rule else entry
    name = "_".join(f"{k}{values[k]}" for k in ("lr", "seed") if k in values)
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
    if lr_rule(entry):
        raise ValueError(f"sweep entry {entry}: its learning-rate rule must be resolved before training")
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
    folder would overwrite each other's checkpoints and record. A learning-rate rule counts under every
    name it can resolve to."""
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
        rule = [e for e in entries[:i] if run_name(e) == entry.get("warm_start") and lr_rule(e)]
        if rule:
            raise BadInputError(
                f"sweep entry {entry} warm-starts from {entry['warm_start']!r}, whose learning rate is a rule: "
                "its run folder is named only once the rule is applied; warm-start from an entry with a number"
            )
        _check_rule(entries, i)
    for i in range(len(entries)):
        names += [run_name(e) for e in _resolutions(entries, i)]
    clashes = sorted({n for n in names if names.count(n) > 1})
    if clashes:
        raise BadInputError(
            f"sweep entries (or runs) {clashes} map to the same run folder; give them different lr or seed"
        )


def _resolutions(entries: list[dict[str, Any]], index: int) -> list[dict[str, Any]]:
    """The entry itself, or each entry its learning-rate rule can resolve to."""
    entry = entries[index]
    if not lr_rule(entry):
        return [entry]
    return [with_lr(entry, rate) for rate in sorted({e["lr"] for e in rule_inputs(entries, index)})]


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


def _check_rule(entries: list[dict[str, Any]], index: int) -> None:
    """A learning-rate rule names a trainer that the earlier entries run at two or more learning rates,
    each given as a number (the rule reads them and names its run by the one it picks)."""
    entry = entries[index]
    lr = entry.get("lr")
    if isinstance(lr, dict) and (set(lr) != {BEST_OF} or lr[BEST_OF] not in TRAINERS):
        raise BadInputError(
            f"sweep entry {entry} gives lr {lr}; valid: a number or {{{BEST_OF}: TRAINER}} with TRAINER one of "
            f"{', '.join(TRAINERS)} (the best learning rate of that trainer's earlier entries)"
        )
    trainer = lr_rule(entry)
    if trainer is None:
        return
    inputs = rule_inputs(entries, index)
    unnumbered = [run_name(e) for e in inputs if not isinstance(e.get("lr"), int | float)]
    if unnumbered:
        raise BadInputError(
            f"sweep entry {entry} takes the best learning rate of {trainer!r}, but the earlier {trainer!r} "
            f"entries {unnumbered} give no number for lr; give each one"
        )
    rates = {e["lr"] for e in inputs}
    if len(rates) < 2:
        raise BadInputError(
            f"sweep entry {entry} takes the best learning rate of {trainer!r}, but the earlier entries run "
            f"{trainer!r} at {len(rates)} learning rate(s); it needs two or more, listed before it"
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
