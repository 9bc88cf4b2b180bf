"""Bad files are one line: a truncated or garbled checkpoint (backbone, LoRA adapter, value head weights,
trainer_state.pt, config.yaml), study unit (runs/*.json, pi0.json) or results folder suite.json is a
CorruptFileError (a UserError: one ``error:`` line from the CLI) naming the file and what to do, and
nothing of the good files around it is touched."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from tests.cli.test_cli import cli
from tests.trainers.tiny_policy import tiny_policy_cfg
from vla_razor.config import asset_path
from vla_razor.errors import CorruptFileError, UserError
from vla_razor.evaluation.store import ResultsStore
from vla_razor.evaluation.study import load_results
from vla_razor.evaluation.suite_spec import SuiteSpec
from vla_razor.policies import build_policy, load_policy
from vla_razor.rollouts import SeededEpisode
from vla_razor.trainers.checkpoint import load_checkpoint, save_checkpoint

STUDY = Path(asset_path("studies")) / "default"
SUITE = SuiteSpec("tiny_test", "grasp_lift_can", ("lift",), 2, 100_000, 0, 1)


def cut(file: Path) -> None:
    """What a kill or a full disk leaves: the first half of the file."""
    data = file.read_bytes()
    file.write_bytes(data[: len(data) // 2])


def snapshot(root: Path, but: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file() and p != but}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real LoRA checkpoint written by the trainers' save path: backbone, adapter, value head, state."""
    policy = build_policy(tiny_policy_cfg(finetune="lora", lora={"r": 4, "alpha": 8}))
    run = tmp_path_factory.mktemp("run")
    return save_checkpoint(
        run,
        1,
        policy=policy,
        trainer_state={"trainer": "bc", "step": 1, "moments": torch.ones(64)},
        config={"trainer": {"name": "bc"}, "policy": {"family": "tiny"}},
    )


@pytest.mark.parametrize(
    "name", ["base/model.safetensors", "adapter/adapter_model.safetensors", "value_head.safetensors"]
)
def test_a_cut_weights_file_is_one_line_naming_it(checkpoint, tmp_path, name) -> None:
    copy = shutil.copytree(checkpoint, tmp_path / checkpoint.name)
    file = copy / "policy" / name
    assert file.is_file()
    cut(file)
    with pytest.raises(CorruptFileError, match=r"corrupt or truncated file .*re-train the run") as err:
        load_policy(copy / "policy")
    assert str(file) in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("name", ["trainer_state.pt", "config.yaml"])
def test_a_cut_trainer_state_or_config_is_one_line_naming_it(checkpoint, tmp_path, name) -> None:
    copy = shutil.copytree(checkpoint, tmp_path / checkpoint.name)
    file = copy / name
    cut(file)
    if name == "config.yaml":  # a YAML cut at a line end may still parse; a garbled one never does
        file.write_bytes(file.read_bytes() + b"\x00: [")
    with pytest.raises(CorruptFileError, match=r"re-train the run") as err:
        load_checkpoint(copy)
    assert str(file) in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("unit", ["runs/bc_kl_lr0.0001_seed0.json", "pi0.json"])
def test_a_cut_study_unit_is_one_line_and_the_other_units_are_untouched(tmp_path, unit) -> None:
    study = shutil.copytree(STUDY, tmp_path / "study")
    file = study / unit
    cut(file)
    before = snapshot(study, but=file)
    with pytest.raises(CorruptFileError, match=r"delete the unit") as err:
        load_results(study)
    assert str(file) in str(err.value) and "\n" not in str(err.value)
    assert snapshot(study, but=file) == before


def test_a_cut_suite_json_is_one_line_and_the_episodes_are_untouched(tmp_path) -> None:
    store = ResultsStore(tmp_path, SUITE, "sha256:pi0")
    store.append_episode("pi0", "sha256:pi0", "lift", SeededEpisode(0, True, 10, None))
    cut(tmp_path / "suite.json")
    before = snapshot(tmp_path, but=tmp_path / "suite.json")
    with pytest.raises(CorruptFileError, match=r"suite\.json.*re-evaluate into a fresh out_dir"):
        ResultsStore(tmp_path, SUITE, "sha256:pi0")
    assert snapshot(tmp_path, but=tmp_path / "suite.json") == before
    assert issubclass(CorruptFileError, UserError)


@pytest.mark.slow
def test_eval_of_a_corrupt_checkpoint_is_one_line_through_the_cli(tmp_path) -> None:
    corrupt = shutil.copytree(asset_path("pi0_tiny"), tmp_path / "corrupt")
    cut(corrupt / "base" / "model.safetensors")
    out = tmp_path / "results"
    result = cli("eval", f"checkpoints=[{corrupt}]", f"out_dir={out}", f"hydra.run.dir={tmp_path / 'hydra'}")
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: corrupt or truncated file"), result.stderr[-2000:]
    assert "model.safetensors" in last and "re-train" in last and "Traceback" not in result.stderr
    assert not (out / "episodes.jsonl").exists() and not (out / "suite.json").exists()  # nothing played
