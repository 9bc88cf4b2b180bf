"""The study records a run's checkpoints on its save schedule only: a checkpoint saved because the run was
interrupted is a resume point, and would otherwise add a point that depends on when it was stopped."""

from __future__ import annotations

from pathlib import Path

import pytest

from vla_razor.errors import BadInputError
from vla_razor.trainers.bc import BCSettings
from vla_razor.trainers.checkpoint import save_checkpoint
from vla_razor.workflows.sweep import scheduled_checkpoints


class _Policy:
    def save_pretrained(self, path: Path) -> None:
        path.mkdir(parents=True)
        (path / "weights.safetensors").write_text("w")


def _save(run: Path, step: int, save_every: int | None, total: int, save_at: list[int] | None = None) -> None:
    config = {"trainer": {"save_every": save_every, "num_iterations": total, "save_at": save_at}}
    save_checkpoint(run, step, policy=_Policy(), trainer_state={"step": step}, config=config)


def test_an_interruption_checkpoint_is_not_recorded(tmp_path) -> None:
    run = tmp_path / "bc_kl_lr0.0001_seed0"
    for step in (500, 739, 1000, 1500, 2000):  # 739: Ctrl-C, then resumed
        _save(run, step, save_every=500, total=2000)
    kept = [pid for pid, _ in scheduled_checkpoints(run)]
    assert kept == [f"{run.name}/step_{s:06d}" for s in (500, 1000, 1500, 2000)]
    assert [pid for pid, _ in scheduled_checkpoints(run, all_checkpoints=False)] == [kept[-1]]


def test_the_last_step_counts_even_off_the_period_and_without_one(tmp_path) -> None:
    run = tmp_path / "ppo"
    for step in (3, 6, 7):
        _save(run, step, save_every=3, total=7)
    assert [pid.rsplit("/", 1)[1] for pid, _ in scheduled_checkpoints(run)] == [
        "step_000003",
        "step_000006",
        "step_000007",
    ]
    only_last = tmp_path / "no_period"
    for step in (4, 9):
        _save(only_last, step, save_every=None, total=9)
    assert [pid.rsplit("/", 1)[1] for pid, _ in scheduled_checkpoints(only_last)] == ["step_000009"]


def test_log_spaced_checkpoints_are_on_the_schedule(tmp_path) -> None:
    run = tmp_path / "bc_lr1e-05_seed0"
    log_spaced = [20, 60, 200, 600]
    for step in (20, 60, 200, 333, 600, 2000):  # 333: an interruption
        _save(run, step, save_every=None, total=2000, save_at=log_spaced)
    kept = [pid.rsplit("_", 1)[1] for pid, _ in scheduled_checkpoints(run)]
    assert kept == ["000020", "000060", "000200", "000600", "002000"]


def test_the_loop_saves_on_the_schedule_and_bad_schedules_are_one_line(tmp_path) -> None:
    settings = BCSettings(num_iterations=2000, save_every=0, save_at=[20, 600])
    assert [s for s in range(1, 2001) if settings.saves_at(s)] == [20, 600, 2000]
    with pytest.raises(BadInputError, match=r"trainer.save_at=\[0, 20\] must list updates between 1 and"):
        BCSettings(num_iterations=2000, save_at=[0, 20])
