"""A sweep entry's learning-rate rule (``lr: {best_of: bc}``, study 2's DAgger): checked before any compute,
applied to the recorded units once every run it reads is recorded, and waited for by units on a cluster."""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hydra import compose, initialize_config_dir

from vla_razor.config import asset_path, config_dir, register_resolvers
from vla_razor.errors import BadInputError, MissingFileError
from vla_razor.rollouts import EngineSettings
from vla_razor.workflows import study as study_workflow
from vla_razor.workflows import unit_dispatch
from vla_razor.workflows.study import StudyConfig
from vla_razor.workflows.study_units import UnitResult
from vla_razor.workflows.sweep import check_entries, lr_rule, rule_inputs, run_name, train_overrides, with_lr
from vla_razor.workflows.unit_dispatch import PlannedUnit, UnitSettings, UnitsFailed, run_units

COMMITTED = Path(asset_path("studies")) / "pick_place"
BC = [{"trainer": "bc", "lr": lr, "seed": 0} for lr in (1e-5, 3e-5, 1e-4)]
DAGGER = {"trainer": "dagger", "lr": {"best_of": "bc"}, "seed": 0}


def test_a_rule_is_named_for_what_it_takes_and_resolves_to_a_plain_entry() -> None:
    assert lr_rule(DAGGER) == "bc" and lr_rule(BC[0]) is None
    assert run_name(DAGGER) == "dagger_lr-best-of-bc_seed0"
    resolved = with_lr(DAGGER, 3e-5)
    assert lr_rule(resolved) is None and run_name(resolved) == "dagger_lr3e-05_seed0"
    assert rule_inputs([*BC, {"trainer": "ppo", "lr": 1e-5, "seed": 0}, DAGGER], 4) == BC
    assert rule_inputs([*BC, DAGGER], 0) == []  # no rule


def test_an_unresolved_rule_never_reaches_training(tmp_path: Path) -> None:
    suite = _study2(tmp_path).evaluation.suite
    with pytest.raises(ValueError, match="must be resolved"):
        train_overrides(DAGGER, suite, "pi0", Path("train"), Path("demos.hdf5"), [])
    _, overrides = train_overrides(with_lr(DAGGER, 3e-5), suite, "pi0", Path("train"), Path("d.hdf5"), [])
    assert "trainer.lr=3e-05" in overrides


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ([*BC, {**DAGGER, "lr": {"best": "bc"}}], "valid: a number or {best_of: TRAINER}"),
        ([BC[0], BC[0] | {"seed": 1}, DAGGER], "at 1 learning rate"),  # one rate: nothing to choose
        ([DAGGER, *BC], "at 0 learning rate"),  # the rule's runs must come first
        ([*BC, {**DAGGER, "lr": {"best_of": "ppo"}}], "'ppo' at 0 learning rate"),
        ([*BC, {**DAGGER, "lr": {"best_of": "bcc"}}], "TRAINER one of bc, bc_kl"),
        ([*BC, {"trainer": "bc", "seed": 1}, DAGGER], "entries ['bc_seed1'] give no number for lr"),
        # An explicit entry where the rule may land would share its run folder.
        ([*BC, {**DAGGER, "lr": 3e-5}, DAGGER], "['dagger_lr3e-05_seed0'] map to the same run folder"),
        (
            [*BC, DAGGER, {"trainer": "ppo", "lr": 1e-5, "warm_start": "dagger_lr-best-of-bc_seed0"}],
            "whose learning rate is a rule",
        ),
    ],
)
def test_a_bad_rule_is_one_line_before_any_compute(entries: list[dict[str, Any]], message: str) -> None:
    with pytest.raises(BadInputError, match=re.escape(message)):
        check_entries(entries, [])


def _study2(study_dir: Path) -> StudyConfig:
    register_resolvers()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        study = StudyConfig.from_cfg(compose(config_name="study2"))
    return replace(study, study_dir=study_dir, sweep=[*BC, DAGGER])


def test_the_rule_reads_the_recorded_units_once_all_of_them_exist(tmp_path: Path) -> None:
    """Study 2's first three BC units (committed, so the answer is fixed): lr 3e-5 and 1e-4 each reach
    40/52 at best, 1e-5 35/52; the tie goes to the smaller rate."""
    (tmp_path / "runs").mkdir()
    shutil.copyfile(COMMITTED / "pi0.json", tmp_path / "pi0.json")
    pi0_hash = json.loads((tmp_path / "pi0.json").read_text())["pi0"]["hash"]
    study = _study2(tmp_path)
    for entry in BC[:2]:
        _copy_unit(run_name(entry), tmp_path)
    with pytest.raises(MissingFileError, match=r"\['bc_lr0.0001_seed0'\] are not recorded"):
        study_workflow._resolved(study, 3, pi0_hash)
    _copy_unit("bc_lr0.0001_seed0", tmp_path)
    assert study_workflow._resolved(study, 3, pi0_hash) == with_lr(DAGGER, 3e-5)
    # A BC unit outside the rule's entries does not move it (seed 0's 1e-4 copied as an extra run).
    extra = json.loads((COMMITTED / "runs" / "bc_lr0.0001_seed0.json").read_text())
    extra["policies"] = {
        pid.replace("seed0", "seed9"): {**rec, "new_task_success": 1.0}
        for pid, rec in extra["policies"].items()
    }
    (tmp_path / "runs" / "bc_lr0.0001_seed9.json").write_text(json.dumps(extra))
    assert study_workflow._resolved(study, 3, pi0_hash) == with_lr(DAGGER, 3e-5)
    assert study_workflow._resolved(study, 0, pi0_hash) is BC[0]  # no rule: as it is


def _copy_unit(name: str, study_dir: Path) -> None:
    shutil.copyfile(COMMITTED / "runs" / f"{name}.json", study_dir / "runs" / f"{name}.json")


def test_on_a_cluster_the_rule_waits_for_the_unrecorded_runs_it_reads(tmp_path, monkeypatch) -> None:
    """Units planned for Ray or SLURM: the rule waits for the BC units still to run (not for recorded
    ones); once all are recorded it is planned under the name of the rate it picks, or skipped if that
    unit is recorded too."""
    (tmp_path / "runs").mkdir()
    shutil.copyfile(COMMITTED / "pi0.json", tmp_path / "pi0.json")
    pi0_hash = json.loads((tmp_path / "pi0.json").read_text())["pi0"]["hash"]
    study = _study2(tmp_path)
    planned: list[PlannedUnit] = []
    monkeypatch.setattr(study_workflow, "run_units", lambda units, *args: planned.extend(units))

    def plan() -> dict[str, tuple[str, ...]]:
        planned.clear()
        study_workflow._units_elsewhere(study, EngineSettings(), None, pi0_hash)
        return {unit.name: unit.after for unit in planned}

    _copy_unit("bc_lr1e-05_seed0", tmp_path)
    assert plan() == {
        "bc_lr3e-05_seed0": (),
        "bc_lr0.0001_seed0": (),
        "dagger_lr-best-of-bc_seed0": ("bc_lr3e-05_seed0", "bc_lr0.0001_seed0"),
    }
    _copy_unit("bc_lr3e-05_seed0", tmp_path)
    _copy_unit("bc_lr0.0001_seed0", tmp_path)
    assert plan() == {"dagger_lr3e-05_seed0": ()}
    shutil.copyfile(
        tmp_path / "runs" / "bc_lr3e-05_seed0.json", tmp_path / "runs" / "dagger_lr3e-05_seed0.json"
    )
    assert plan() == {}


class _InlineBackend:
    """Finishes each unit as soon as it is submitted (its spec here is its name): enough to see what waits
    for what."""

    submitted: list[str] = []

    def __init__(self, *args: Any) -> None:
        _InlineBackend.submitted = []

    def submit(self, spec: Any) -> Any:
        _InlineBackend.submitted.append(spec)
        return spec

    def next_finished(self, handles: list[Any]) -> tuple[Any, UnitResult | BaseException]:
        name = handles[0]
        if name.startswith("bad"):
            return name, RuntimeError(f"{name} broke")
        return name, UnitResult(name, {}, (), {"eval_s": 1.0, "machine": "test"})

    def cancel(self, handles: list[Any]) -> None:
        pass

    def close(self) -> None:
        pass


def _run(planned: list[PlannedUnit], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[str]:
    monkeypatch.setattr(unit_dispatch, "_SubmititBackend", _InlineBackend)
    run_units(planned, UnitSettings(backend="submitit"), lambda result: None, tmp_path)
    return _InlineBackend.submitted


def test_a_unit_waits_for_every_unit_it_names(monkeypatch, tmp_path) -> None:
    planned = [
        PlannedUnit("rule", lambda: "rule", after=("bc1", "bc0")),
        PlannedUnit("bc0", lambda: "bc0"),
        PlannedUnit("bc1", lambda: "bc1", after=("bc0",)),
    ]
    assert _run(planned, monkeypatch, tmp_path) == ["bc0", "bc1", "rule"]


def test_a_unit_waiting_for_a_failed_one_fails_with_it(monkeypatch, tmp_path) -> None:
    planned = [PlannedUnit("bad", lambda: "bad"), PlannedUnit("rule", lambda: "rule", after=("bad",))]
    with pytest.raises(UnitsFailed, match=r"rule \[bad, which it waits for, failed\]"):
        _run(planned, monkeypatch, tmp_path)
    assert _InlineBackend.submitted == ["bad"]


def test_units_that_wait_on_each_other_or_on_no_planned_unit_are_refused(monkeypatch, tmp_path) -> None:
    with pytest.raises(ValueError, match=r"units wait for \['recorded'\], which are not planned"):
        _run([PlannedUnit("rule", lambda: "rule", after=("recorded",))], monkeypatch, tmp_path)
    cycle = [PlannedUnit("a", lambda: "a", after=("b",)), PlannedUnit("b", lambda: "b", after=("a",))]
    with pytest.raises(RuntimeError, match="units wait on each other"):
        _run(cycle, monkeypatch, tmp_path)


def test_a_unit_whose_spec_cannot_be_built_fails_alone(monkeypatch, tmp_path) -> None:
    def missing() -> str:
        raise MissingFileError("bc_lr1e-05_seed0 is not recorded")

    planned = [PlannedUnit("rule", missing), PlannedUnit("other", lambda: "other")]
    with pytest.raises(UnitsFailed, match=r"rule \[MissingFileError: bc_lr1e-05_seed0 is not recorded\]"):
        _run(planned, monkeypatch, tmp_path)
    assert _InlineBackend.submitted == ["other"]
