"""Behaviour cloning on a real (small) demo file: it learns, it resumes exactly, it rejects bad input."""

from __future__ import annotations

import numpy as np
import pytest

from tests.trainers.conftest import tiny_policy_cfg
from vla_razor.data.normalization import ActionNormStats
from vla_razor.data.steps import StepData, load_steps
from vla_razor.errors import BadInputError
from vla_razor.evaluation.runner import checkpoint_demo_losses
from vla_razor.policies import build_policy, load_policy
from vla_razor.trainers.bc import BCSettings, minibatch_sampler, train_bc, validate
from vla_razor.trainers.checkpoint import load_checkpoint
from vla_razor.trainers.logger import read_metrics

KEYS = ["agentview_image"]


def _policy(data):
    stats = ActionNormStats.from_actions(data.actions)
    return build_policy(tiny_policy_cfg(norm_stats=stats.to_dict()))


def test_bc_lowers_loss_and_raises_token_accuracy(lift_demos, tmp_path) -> None:
    train = load_steps([lift_demos], KEYS, split="train")
    policy = _policy(train)
    before = validate(policy, train, batch_size=64, max_batches=4)
    settings = BCSettings(
        lr=2e-3,
        minibatch_size=32,
        num_iterations=80,
        warmup_steps=5,
        log_every=20,
        val_every=0,
        save_every=0,
        shift_pad=0,
    )
    train_bc(policy, train, settings, tmp_path, {"trainer": "bc"}, progress=False)
    after = validate(policy, train, batch_size=64, max_batches=4)
    assert after["loss"] < 0.7 * before["loss"]
    assert after["token_accuracy"] > before["token_accuracy"] + 0.1
    logged = [m["train/loss"] for m in read_metrics(tmp_path) if "train/loss" in m]
    assert logged[-1] < logged[0]


def test_every_checkpoint_records_training_and_held_back_demo_loss(lift_demos, tmp_path) -> None:
    train = load_steps([lift_demos], KEYS, split="train")
    valid = load_steps([lift_demos], KEYS, split="valid")
    settings = BCSettings(
        lr=2e-3,
        minibatch_size=16,
        num_iterations=12,
        warmup_steps=2,
        log_every=5,
        val_every=0,  # no periodic validation: checkpoints measure both losses on their own
        save_every=0,
        save_at=[3],
        keep_last=None,
        val_batches=2,
        shift_pad=0,
    )
    policy = _policy(train)
    train_bc(policy, train, settings, tmp_path, {}, val_data=valid, progress=False)
    losses = {
        step: checkpoint_demo_losses(tmp_path / "checkpoints" / f"step_{step:06d}" / "metrics.json", step)
        for step in (3, 12)
    }
    for step, measured in losses.items():
        assert set(measured) == {
            "train_demos_loss",
            "val_loss",
            "train_demos_token_accuracy",
            "val_token_accuracy",
        }, step
    # Losses measured at another step are not this checkpoint's.
    assert checkpoint_demo_losses(tmp_path / "checkpoints" / "step_000012" / "metrics.json", 13) == {}
    # The last checkpoint's figures are the estimator's on the final weights.
    assert losses[12]["val_loss"] == pytest.approx(validate(policy, valid, 16, 2)["loss"], rel=1e-5)
    assert losses[12]["train_demos_loss"] == pytest.approx(validate(policy, train, 16, 2)["loss"], rel=1e-5)
    assert losses[12]["train_demos_loss"] < losses[3]["train_demos_loss"]
    # Only the checkpoint steps validated (val_every=0).
    assert [m["step"] for m in read_metrics(tmp_path) if "val/loss" in m] == [3, 12]


def test_validation_spreads_over_the_whole_data_set(monkeypatch) -> None:
    """validate() samples evenly over the steps, not the first batches, so late episode phases count."""

    class Steps:
        def __init__(self, n: int) -> None:
            self.n, self.seen = n, []

        def __len__(self) -> int:
            return self.n

        def batch(self, index):
            self.seen.append(np.asarray(index))
            return None, None, None

    class Policy:
        training = True

        def eval(self) -> None:
            self.training = False

        def train(self, mode: bool = True) -> None:
            self.training = mode

    monkeypatch.setattr(
        "vla_razor.trainers.bc.bc_batch_loss", lambda *a, **k: (None, {"loss": 1.0, "token_accuracy": 0.5})
    )
    data, policy = Steps(1000), Policy()
    figures = validate(policy, data, batch_size=8, max_batches=2)
    seen = np.concatenate(data.seen)
    assert len(seen) == 16 and seen[0] == 0 and seen[-1] == 999 and np.all(np.diff(seen) > 0)
    assert figures == {"loss": 1.0, "token_accuracy": 0.5} and policy.training  # mode restored
    small = Steps(5)
    validate(policy, small, batch_size=8, max_batches=2)
    assert np.concatenate(small.seen).tolist() == [0, 1, 2, 3, 4]


class _StopAt:
    """An 'evaluator' that kills the run at a given step, like a crash between checkpoints."""

    def __init__(self, step: int) -> None:
        self.step = step

    def __call__(self, policy, step):
        if step == self.step:
            raise KeyboardInterrupt
        return {}


def test_resume_continues_exactly(lift_demos, tmp_path) -> None:
    train = load_steps([lift_demos], KEYS, split="train")
    settings = BCSettings(
        lr=1e-3,
        minibatch_size=16,
        num_iterations=30,
        warmup_steps=3,
        log_every=5,
        val_every=0,
        save_every=10,
        eval_every=15,
        keep_last=None,
        shift_pad=2,
    )
    full_dir, cut_dir = tmp_path / "full", tmp_path / "cut"
    train_bc(_policy(train), train, settings, full_dir, {}, progress=False)

    with pytest.raises(KeyboardInterrupt):
        train_bc(_policy(train), train, settings, cut_dir, {}, evaluator=_StopAt(15), progress=False)
    ckpt = load_checkpoint(cut_dir)
    assert ckpt.trainer_state["step"] == 10  # the last periodic checkpoint before the "crash"
    resumed = load_policy(ckpt.policy_dir)
    train_bc(resumed, train, settings, cut_dir, {}, resume_state=ckpt.trainer_state, progress=False)

    full: dict = {}
    for m in read_metrics(full_dir):
        full.setdefault(m["step"], {}).update(m)  # a checkpoint step logs several lines
    cut: dict = {}
    for m in read_metrics(cut_dir):
        cut.setdefault(m["step"], {}).update(m)  # later entries (after resume) overwrite the pre-crash ones
    for step in (15, 20, 25, 30):
        assert cut[step]["train/loss"] == full[step]["train/loss"], step
        assert cut[step]["train/token_accuracy"] == full[step]["train/token_accuracy"], step


def test_bad_settings_and_data_are_one_line_errors(lift_demos) -> None:
    with pytest.raises(ValueError, match="trainer.lr"):
        BCSettings(lr=0.0)
    with pytest.raises(ValueError, match="trainer.lr"):
        BCSettings(lr=-1e-4)
    with pytest.raises(ValueError, match="lacks observation"):
        load_steps([lift_demos], ["robot0_eye_in_hand_image"])
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_steps(["/nonexistent/demos.hdf5"], KEYS)


def test_nan_loss_stops_and_saves_last_good_checkpoint(lift_demos, tmp_path, monkeypatch) -> None:
    import vla_razor.trainers.bc as bc
    from vla_razor.trainers.common import NonFiniteLossError

    real = bc.bc_batch_loss
    calls = {"n": 0}

    def nan_on_fourth_batch(*args, **kwargs):
        loss, metrics = real(*args, **kwargs)
        calls["n"] += 1
        return (loss * float("nan"), metrics) if calls["n"] == 4 else (loss, metrics)

    monkeypatch.setattr(bc, "bc_batch_loss", nan_on_fourth_batch)
    train = load_steps([lift_demos], KEYS, split="train")
    policy = _policy(train)
    settings = BCSettings(
        lr=1e-3, minibatch_size=8, num_iterations=10, log_every=1, val_every=0, save_every=0, shift_pad=0
    )
    with pytest.raises(NonFiniteLossError, match="at step 3"):
        train_bc(policy, train, settings, tmp_path, {}, progress=False)
    ckpt = load_checkpoint(tmp_path)
    assert ckpt.trainer_state["step"] == 3
    from vla_razor.policies import load_policy

    reloaded = load_policy(ckpt.policy_dir)
    assert all(np.isfinite(p.detach().numpy()).all() for p in reloaded.parameters())


def _two_task_steps(long: int, short: int) -> StepData:
    n = long + short
    return StepData(
        obs={"proprio": np.zeros((n, 1), np.float32)},
        instruction_ids=np.array([0] * long + [1] * short),
        instructions=["put the can in the bin", "lift the red cube"],
        actions=np.zeros((n, 7), np.float32),
        episode_ids=np.zeros(n, np.int64),
    )


def test_task_sampling_weighs_tasks_equally_when_asked() -> None:
    data = _two_task_steps(long=900, short=100)
    rng = np.random.default_rng(0)
    by_steps = minibatch_sampler(data, "steps")(rng, 20000)
    by_tasks = minibatch_sampler(data, "tasks")(rng, 20000)
    # 10% of the steps are the short task's; "tasks" gives it half of every minibatch.
    assert abs(np.mean(data.instruction_ids[by_steps] == 1) - 0.1) < 0.02
    assert abs(np.mean(data.instruction_ids[by_tasks] == 1) - 0.5) < 0.02
    assert by_tasks.min() >= 0 and by_tasks.max() < len(data)
    assert len(np.unique(by_tasks[data.instruction_ids[by_tasks] == 1])) == 100  # every short step drawn
    with pytest.raises(BadInputError, match="task_sampling='episodes'"):
        BCSettings(task_sampling="episodes")
