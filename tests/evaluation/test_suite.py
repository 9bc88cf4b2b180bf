"""The held-out suite end to end on a tiny policy with small N, the report, and bad input."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from tests.trainers.conftest import tiny_policy_cfg
from vla_razor.checkpoints import expand_checkpoints
from vla_razor.errors import BadInputError
from vla_razor.evaluation.runner import EvalConfig, run_suite
from vla_razor.evaluation.study import load_results, merge_results, write_report
from vla_razor.evaluation.suite_spec import SuiteSpec
from vla_razor.evaluation.table import results_table
from vla_razor.policies import build_policy

SUITE = dict(
    name="tiny_test",
    new_task="grasp_lift_can",
    prior_tasks=("lift",),
    episodes=2,
    seed=100_000,
    kl_states=6,
    kl_state_seeds=1,
)


@pytest.fixture(scope="module")
def pi0_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("pi0") / "pi0"
    words = ["lift", "the", "red", "cube", "grasp", "and", "can"]
    build_policy(tiny_policy_cfg(extra_words=words, seed=1)).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def other_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A different policy (other init) standing in for a fine-tuned checkpoint."""
    path = tmp_path_factory.mktemp("ckpt") / "other"
    words = ["lift", "the", "red", "cube", "grasp", "and", "can"]
    build_policy(tiny_policy_cfg(extra_words=words, seed=2)).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def results(pi0_dir: Path, other_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("results")
    ckpts = expand_checkpoints([str(pi0_dir), str(other_dir)], True)
    ckpts[0] = ("pi0_copy", ckpts[0][1])
    config = EvalConfig(pi0_dir, SuiteSpec(**SUITE), out, videos=1, video_dir=out / "videos", progress=False)
    doc = run_suite(config, ckpts)
    return out, doc


def test_suite_writes_valid_json_and_videos(results) -> None:
    out, doc = results
    on_disk = json.loads((out / "results.json").read_text())
    assert on_disk["n_per_task"] == 2 and on_disk["seeds"] == [100_000, 100_001]
    assert set(on_disk["policies"]) == {"pi0", "pi0_copy", "other"}
    assert on_disk["versions"]["torch"]
    for rec in on_disk["policies"].values():
        for task in ("lift", "grasp_lift_can"):
            assert rec["tasks"][task]["n"] == 2
            assert 0.0 <= rec["tasks"][task]["success_rate"] <= 1.0
    assert on_disk["policies"]["other"]["divergence"]["kl_states"] == 6
    assert on_disk["policies"]["other"]["divergence"]["forward_kl"] > 0
    videos = sorted((out / "videos").glob("*.mp4"))
    assert videos and all("seed100000" in v.name for v in videos)


def test_pi0_against_itself_has_zero_kl_and_zero_forgetting(results) -> None:
    _, doc = results
    copy = doc["policies"]["pi0_copy"]
    assert copy["divergence"]["forward_kl"] == 0.0
    assert copy["divergence"]["reverse_kl"] == 0.0
    assert copy["forgetting"]["mean"] == 0.0
    assert copy["weight_l2_from_pi0"] == 0.0
    assert doc["policies"]["pi0"]["forgetting"]["mean"] == 0.0


def test_report_rebuilds_from_json(results, tmp_path) -> None:
    out, doc = results
    report = write_report(load_results(out), tmp_path, results_table(doc))
    text = report.read_text()
    assert "![pareto](pareto.png)" in text and "forward KL" in text
    for png in ("pareto.png", "forgetting_vs_forward_kl.png"):
        data = (tmp_path / png).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000
    points = json.loads((tmp_path / "points.json").read_text())
    assert len(points["points"]) == 3
    assert math.isnan(points["r2"]["forward_kl"]) or -1e9 < points["r2"]["forward_kl"] <= 1.0


def test_interrupted_eval_resumes_from_logged_episodes(results, pi0_dir, other_dir) -> None:
    out, doc = results
    # Simulate a kill: drop the summary of `other` and the last half of its episodes.
    rows = [json.loads(line) for line in (out / "episodes.jsonl").read_text().splitlines()]
    other_rows = [r for r in rows if r["policy"] == "other"]
    kept = [r for r in rows if r["policy"] != "other"] + other_rows[: len(other_rows) // 2]
    (out / "episodes.jsonl").write_text("".join(json.dumps(r) + "\n" for r in kept) + '{"policy": "oth')
    recs = [json.loads(line) for line in (out / "policies.jsonl").read_text().splitlines()]
    (out / "policies.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs if r["policy"] != "other"))
    ckpts = expand_checkpoints([str(pi0_dir), str(other_dir)], True)
    ckpts[0] = ("pi0_copy", ckpts[0][1])
    again = run_suite(EvalConfig(pi0_dir, SuiteSpec(**SUITE), out, progress=False), ckpts)
    rows = [
        json.loads(line) for line in (out / "episodes.jsonl").read_text().splitlines() if line.endswith("}")
    ]
    keys = [(r["policy"], r["task"], r["seed"]) for r in rows if r.get("seed") is not None]
    assert len(keys) == len(set(keys)) == 3 * 2 * 2
    assert again["policies"]["other"]["tasks"] == doc["policies"]["other"]["tasks"]


def test_bad_inputs(pi0_dir, tmp_path, results) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        expand_checkpoints([str(tmp_path / "missing")], True)
    with pytest.raises(ValueError, match="unknown task 'juggle'"):
        SuiteSpec(**{**SUITE, "prior_tasks": ("juggle",)})
    with pytest.raises(ValueError, match="episodes must be > 0"):
        SuiteSpec(**{**SUITE, "episodes": 0})
    out, doc = results
    with pytest.raises(ValueError, match="different settings"):
        run_suite(EvalConfig(pi0_dir, SuiteSpec(**{**SUITE, "episodes": 3}), out, progress=False), [])
    other = dict(doc)
    other["suite"] = {**doc["suite"], "name": "another"}
    with pytest.raises(ValueError, match="different suites"):
        merge_results([doc, other])


def test_checkpoint_of_another_family_is_refused(pi0_dir, tmp_path) -> None:
    from vla_razor.policies import build_policy as build
    from vla_razor.policies.mini_openvla.build import build_mini_openvla_checkpoint

    hf_dir = build_mini_openvla_checkpoint(tmp_path / "mini_openvla")
    stats = {"q01": [-1.0] * 7, "q99": [1.0] * 7, "mask": [True] * 6 + [False]}
    openvla = build(
        {
            "family": "openvla",
            "model": str(hf_dir),
            "finetune": "frozen",
            "device": "cpu",
            "norm_stats": stats,
            "dtype": "float32",
        }
    )
    openvla.save_pretrained(tmp_path / "openvla_policy")
    with pytest.raises(ValueError, match="'openvla' policy but pi0 is 'tiny'"):
        run_suite(
            EvalConfig(pi0_dir, SuiteSpec(**{**SUITE, "kl_states": 0}), tmp_path / "res", progress=False),
            [("ov", tmp_path / "openvla_policy")],
        )


def test_records_carry_intervals_pairing_prior_state_kl_and_drift(results) -> None:
    _, doc = results
    other = doc["policies"]["other"]
    lift = other["tasks"]["lift"]
    assert (
        len(lift["successes"]) == 2
        and 0.0 <= lift["wilson_low"] <= lift["success_rate"] <= lift["wilson_high"]
    )
    assert lift["wilson_high"] - lift["wilson_low"] > 0.2  # never ± 0, even at 0% or 100% of 2 episodes
    assert other["forgetting"]["paired"] is True
    div = other["divergence"]
    assert set(div["prior_forward_kl_per_task"]) == {"lift"} and div["prior_forward_kl"] > 0
    assert 0.0 < div["representation_drift"] <= 1.0
    copy = doc["policies"]["pi0_copy"]["divergence"]
    assert copy["prior_forward_kl"] == 0.0 and abs(copy["representation_drift"]) < 1e-12


def test_results_name_policies_by_hash_and_portable_names(results, pi0_dir) -> None:
    out, doc = results
    text = (out / "results.json").read_text()
    assert str(pi0_dir) not in text and str(out) not in text  # no absolute paths of this machine
    assert doc["pi0"]["hash"].startswith("sha256:")
    assert doc["policies"]["pi0_copy"]["hash"] == doc["pi0"]["hash"] != doc["policies"]["other"]["hash"]


def test_changed_checkpoint_is_reevaluated_and_another_pi0_refused(pi0_dir, tmp_path) -> None:
    words = ["lift", "the", "red", "cube", "grasp", "and", "can"]
    ckpt = tmp_path / "run" / "ckpt"
    build_policy(tiny_policy_cfg(extra_words=words, seed=3)).save_pretrained(ckpt)
    suite = SuiteSpec(**{**SUITE, "kl_states": 0})
    config = EvalConfig(pi0_dir, suite, tmp_path / "res", progress=False)
    first = run_suite(config, [("ckpt", ckpt)])
    # Re-train into the same folder: same id, other bytes. The old episodes must not be reused.
    build_policy(tiny_policy_cfg(extra_words=words, seed=4)).save_pretrained(ckpt)
    second = run_suite(config, [("ckpt", ckpt)])
    assert first["policies"]["ckpt"]["hash"] != second["policies"]["ckpt"]["hash"]
    rows = [json.loads(line) for line in (tmp_path / "res" / "episodes.jsonl").read_text().splitlines()]
    ckpt_rows = [r for r in rows if r["policy"] == "ckpt"]
    assert len(ckpt_rows) == 2 * 2 * 2  # both versions played every (task, seed)
    assert {r["hash"] for r in ckpt_rows} == {
        first["policies"]["ckpt"]["hash"],
        second["policies"]["ckpt"]["hash"],
    }
    # A third evaluation of unchanged bytes plays nothing new.
    run_suite(config, [("ckpt", ckpt)])
    assert len((tmp_path / "res" / "episodes.jsonl").read_text().splitlines()) == len(rows)
    # Another pi0 in the same folder: one line naming the problem.
    with pytest.raises(BadInputError, match="another pi0"):
        run_suite(EvalConfig(ckpt, suite, tmp_path / "res", progress=False), [])


def test_duplicate_ids_tiny_kl_state_counts_and_mixed_studies_are_one_line(
    pi0_dir, other_dir, tmp_path
) -> None:
    from vla_razor.errors import BadInputError
    from vla_razor.evaluation.study import study_unit_exists, write_study_unit

    with pytest.raises(BadInputError, match=r"checkpoint id\(s\) \['run/step_1'\] name more than one policy"):
        run_suite(
            EvalConfig(pi0_dir, SuiteSpec(**SUITE), tmp_path),
            [("run/step_1", pi0_dir), ("run/step_1", other_dir)],
        )
    with pytest.raises(BadInputError, match="suite.kl_states must be 0 .* or >= 2"):
        SuiteSpec(**{**SUITE, "kl_states": 1})
    doc = {"suite": {"name": "s"}, "pi0": {"hash": "sha256:a"}, "policies": {"pi0": {}, "r/step_1": {}}}
    write_study_unit(tmp_path / "study", "pi0", doc, ["pi0"])
    write_study_unit(tmp_path / "study", "r", doc, ["r/step_1"])
    assert study_unit_exists(tmp_path / "study", "r", "sha256:a")
    with pytest.raises(BadInputError, match="records r against another pi0"):
        study_unit_exists(tmp_path / "study", "r", "sha256:b")
    with pytest.raises(BadInputError, match="recorded with another suite or pi0"):
        write_study_unit(tmp_path / "study", "pi0", {**doc, "pi0": {"hash": "sha256:b"}}, ["pi0"])


def test_suite_decode_setting() -> None:
    greedy = SuiteSpec(**SUITE)
    assert greedy.sampling.greedy and "decode" not in greedy.identity()  # folders from before still match
    sampled = SuiteSpec(**{**SUITE, "decode": "sampled", "temperature": 0.7})
    assert not sampled.sampling.greedy and sampled.sampling.temperature == 0.7
    assert sampled.sampling.episode_seed == sampled.seed
    assert sampled.identity()["decode"] == "sampled" and sampled.identity() != greedy.identity()
    assert SuiteSpec.from_mapping({**SUITE, "decode": "sampled"}).decode == "sampled"
    with pytest.raises(BadInputError, match="suite.decode='beam' is not one of greedy, sampled"):
        SuiteSpec(**{**SUITE, "decode": "beam"})
    with pytest.raises(BadInputError, match="suite.temperature must be > 0"):
        SuiteSpec(**{**SUITE, "decode": "sampled", "temperature": 0.0})
