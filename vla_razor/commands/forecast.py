"""``vla-razor forecast``: fit forgetting against forward KL(pi0||pi) on evaluated checkpoints, check the
fit by leave-one-run-out, and forecast new checkpoints' forgetting from their new-task KL alone."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from vla_razor.checkpoints import expand_checkpoints, resolve_policy_dir
from vla_razor.errors import BadInputError
from vla_razor.evaluation.divergences import measure_divergences
from vla_razor.evaluation.forecast import (
    Calibration,
    ForecastScore,
    check_calibration,
    forecast_forgetting,
    load_calibration,
    save_calibration,
)
from vla_razor.evaluation.identity import policy_content_hash
from vla_razor.evaluation.kl_states import collect_kl_states, load_kl_states
from vla_razor.evaluation.runner import check_like_pi0
from vla_razor.evaluation.study import calibrate_from_results, load_results
from vla_razor.evaluation.suite_spec import SuiteSpec
from vla_razor.io_utils import write_json_atomic
from vla_razor.policies import load_policy
from vla_razor.policies.base import read_policy_record
from vla_razor.rollouts import EnvPool, policy_env_kwargs
from vla_razor.workflows.config_blocks import engine_settings

log = logging.getLogger(__name__)

CALIBRATION_FILE = "forecast_calibration.json"


def calibrate(results: str, out: str | None, degree: int, confidence: float) -> Calibration:
    calibration, v = calibrate_from_results(load_results(results), degree=degree, confidence=confidence)
    folder = Path(results) if Path(results).is_dir() else Path(results).parent  # a folder or its results.json
    path = Path(out) if out else folder / CALIBRATION_FILE
    save_calibration(path, calibration)
    print(
        f"calibration: forgetting = poly{degree}(forward KL) over {calibration.n} checkpoints of "
        f"{calibration.n_runs} runs (suite {calibration.suite!r}, KL {calibration.x_min:.3g}..{calibration.x_max:.3g})"
        f" -> {path}\n"
        f"leave-one-run-out: {v.confidence:.0%} interval coverage {v.overall.coverage:.0%} (target >= 80%), "
        f"mean absolute error {v.overall.mean_abs_error:.3f}, mean width {v.overall.mean_width:.3f}, "
        f"{v.overall.n} forecasts ({v.n_skipped} skipped); inside the KL range of their fit: "
        f"{_score_text(v.within_range)}; extrapolated: {_score_text(v.extrapolated)}"
    )
    return calibration


def _score_text(score: ForecastScore) -> str:
    if score.n == 0:
        return "none"
    return (
        f"{score.n} forecasts, coverage {score.coverage:.0%}, mean absolute error {score.mean_abs_error:.3f}"
    )


def forecast_checkpoints(cfg: DictConfig, calibration: Calibration) -> list[dict[str, Any]]:
    suite = SuiteSpec.from_mapping(OmegaConf.to_container(cfg.suite, resolve=True))
    pi0_dir = resolve_policy_dir(cfg.pi0)
    pi0_hash = policy_content_hash(pi0_dir)
    # Refuse another suite, new task or pi0 before any compute (one line).
    check_calibration(calibration, suite=suite.name, pi0_hash=pi0_hash, new_task=suite.new_task)
    checkpoints = expand_checkpoints([str(c) for c in cfg.checkpoints], bool(cfg.all_checkpoints))
    pi0_record = read_policy_record(pi0_dir)
    for _, policy_dir in checkpoints:
        check_like_pi0(policy_dir, pi0_record)
    pi0 = load_policy(pi0_dir, finetune="frozen", device=str(cfg.device))
    if cfg.states:
        states = load_kl_states(cfg.states)
        if states["task"] != suite.new_task:
            raise BadInputError(
                f"states {str(cfg.states)!r} are of task {states['task']!r}, not the suite's new task {suite.new_task!r}"
            )
    else:
        with EnvPool(engine_settings(cfg)) as pool:
            states = collect_kl_states(
                pi0,
                pool,
                {"task": suite.new_task, **policy_env_kwargs(pi0)},
                suite.kl_seeds,
                max_states=suite.kl_states,
            )
    rows = []
    for policy_id, policy_dir in checkpoints:
        policy = load_policy(policy_dir, device=str(cfg.device))
        kl = measure_divergences(pi0, policy, states, keys=("forward_kl",))
        f = forecast_forgetting(
            calibration,
            kl["forward_kl"],
            suite=suite.name,
            pi0_hash=pi0_hash,
            confidence=float(cfg.confidence),
        )
        rows.append(
            {
                "policy": policy_id,
                "hash": policy_content_hash(policy_dir),
                "forward_kl": kl["forward_kl"],
                "forward_kl_sem": kl["forward_kl_sem"],
                "forecast_forgetting": f.forgetting,
                "low": f.low,
                "high": f.high,
                "confidence": f.confidence,
                "extrapolated": f.extrapolated,
            }
        )
        del policy
    return rows


def run(cfg: DictConfig) -> dict[str, Any]:
    if not cfg.results and not cfg.checkpoints:
        raise BadInputError(
            "nothing to do: give results=DIR to calibrate, and/or calibration=FILE checkpoints=[DIR,...] to forecast"
        )
    if cfg.degree not in (1, 2):
        raise BadInputError(f"degree must be 1 or 2, got {cfg.degree!r}")
    if not isinstance(cfg.confidence, float) or not 0.0 < cfg.confidence < 1.0:
        raise BadInputError(f"confidence must be a number strictly between 0 and 1, got {cfg.confidence!r}")
    calibration = None
    if cfg.results:
        calibration = calibrate(str(cfg.results), cfg.calibration, int(cfg.degree), float(cfg.confidence))
    if not cfg.checkpoints:
        return {"calibration": calibration.to_dict() if calibration else None}
    if calibration is None:
        if not cfg.calibration:
            raise BadInputError(
                "a forecast needs a calibration: pass calibration=FILE (written by "
                "`vla-razor forecast results=DIR`), or results=DIR to fit one now"
            )
        calibration = load_calibration(cfg.calibration)
    rows = forecast_checkpoints(cfg, calibration)
    lines = [
        f"| checkpoint | forward KL(pi0‖pi) | forecast forgetting [{float(cfg.confidence):.0%} interval] |",
        "|---|---|---|",
    ]
    for r in rows:
        note = " (KL outside the calibration's range)" if r["extrapolated"] else ""
        lines.append(
            f"| {r['policy']} | {r['forward_kl']:.3g} ± {r['forward_kl_sem']:.2g} | "
            f"{r['forecast_forgetting']:+.1%} [{r['low']:+.1%}, {r['high']:+.1%}]{note} |"
        )
    print("\n".join(lines))
    out = Path(cfg.out) if cfg.out else Path(HydraConfig.get().runtime.output_dir) / "forecasts.json"
    write_json_atomic(out, {"calibration": calibration.to_dict(), "forecasts": rows})
    print(f"forecasts: {out}")
    return {"calibration": calibration.to_dict(), "forecasts": rows}
