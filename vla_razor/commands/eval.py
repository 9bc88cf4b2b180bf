"""``vla-razor eval``: the held-out suite for pi0 and a list of checkpoints.

Prints a markdown table and writes ``<out_dir>/results.json`` (machine-readable: versions, seeds, N,
git commit) next to the append-only ``episodes.jsonl``; an interrupted run resumes from it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from vla_razor.checkpoints import expand_checkpoints, resolve_policy_dir
from vla_razor.commands.common import engine_settings
from vla_razor.config import ASSETS_DIR
from vla_razor.errors import BadInputError
from vla_razor.evaluation.identity import policy_content_hash, portable_name
from vla_razor.evaluation.scale_out import ScaleOutSettings, plan_units, run_units_on_ray
from vla_razor.evaluation.suite import (
    ResultsStore,
    SuiteSpec,
    add_forgetting,
    evaluate_policy,
    merged_weights,
    run_info,
    state_caches,
)
from vla_razor.io_utils import write_json_atomic
from vla_razor.policies import load_policy
from vla_razor.policies.base import read_policy_record
from vla_razor.rollouts import EnvPool, policy_env_kwargs
from vla_razor.video import video_dir as make_video_dir

log = logging.getLogger(__name__)


def run_suite(
    pi0_dir: str | Path,
    checkpoints: list[tuple[str, Path]],
    suite: SuiteSpec,
    out_dir: str | Path,
    *,
    videos: int = 0,
    video_dir: str | Path | None = None,
    device: str = "cpu",
    progress: bool = True,
    extra: dict[str, Any] | None = None,
    pool: EnvPool | None = None,
    scale_out: ScaleOutSettings | None = None,
) -> dict[str, Any]:
    """Evaluate pi0 then every checkpoint; returns (and writes) the results document.

    ``pool`` is the command's env pool (one is started and stopped here when none is given): every
    policy's episodes reuse the envs its workers already built. With ``scale_out.backend=ray`` the
    episodes are played first as independent units on a Ray cluster and stored as they arrive; the
    divergences are then computed here, from the cached states.
    """
    if pool is None:
        with EnvPool() as own:
            return run_suite(
                pi0_dir,
                checkpoints,
                suite,
                out_dir,
                videos=videos,
                video_dir=video_dir,
                device=device,
                progress=progress,
                extra=extra,
                pool=own,
                scale_out=scale_out,
            )
    ids = [policy_id for policy_id, _ in checkpoints]
    clashes = sorted({i for i in ids if ids.count(i) > 1 or i == "pi0"})
    if clashes:
        raise BadInputError(
            f"checkpoint id(s) {clashes} name more than one policy (or the reserved 'pi0'): two run folders "
            "with the same name in one evaluation; rename one, or evaluate them into different out_dirs"
        )
    pi0_path = resolve_policy_dir(pi0_dir)
    pi0_hash = policy_content_hash(pi0_path)
    store = ResultsStore(out_dir, suite, pi0_hash)
    vdir = make_video_dir(video_dir) if video_dir and videos > 0 else None
    pi0 = load_policy(pi0_path, finetune="frozen", device=device)
    states = state_caches(pi0, suite, store, pool) if suite.kl_states > 0 else None
    env_kwargs = policy_env_kwargs(pi0)
    pi0_record = read_policy_record(pi0_path)
    for _, policy_dir in checkpoints:  # before any episode is played, here or on a cluster
        check_like_pi0(policy_dir, pi0_record)
    hashes = {policy_id: policy_content_hash(policy_dir) for policy_id, policy_dir in checkpoints}
    if scale_out is not None and scale_out.backend == "ray":
        todo = [("pi0", pi0_hash, pi0_path)] if store.policy_record("pi0", pi0_hash) is None else []
        todo += [
            (pid, hashes[pid], pdir)
            for pid, pdir in checkpoints
            if store.policy_record(pid, hashes[pid]) is None
        ]
        units = plan_units(
            todo,
            suite.tasks,
            suite.seeds,
            env_kwargs,
            scale_out.seeds_per_unit,
            lambda pid, phash, task: set(store.finished(pid, phash, task)),
        )
        log.info("scale-out: %d units of <= %d seeds on Ray", len(units), scale_out.seeds_per_unit)
        run_units_on_ray(
            units,
            scale_out,
            device,
            lambda unit, episodes: [
                store.append_episode(unit.policy_id, unit.policy_hash, unit.task, e) for e in episodes
            ],
            progress=progress,
        )
    records: dict[str, dict[str, Any]] = {}
    base = store.policy_record("pi0", pi0_hash)
    if base is None:
        base = evaluate_policy(
            pi0,
            "pi0",
            pi0_hash,
            suite,
            store,
            pool,
            pi0=None,
            kl_states=states,
            pi0_weights=None,
            videos=videos,
            video_dir=vdir,
            progress=progress,
        )
        base["source"] = portable_name(pi0_path, ASSETS_DIR)
        store.append_policy_record(base)
    records["pi0"] = add_forgetting(dict(base), base, suite)
    pi0_weights = merged_weights(pi0)
    for policy_id, policy_dir in checkpoints:
        policy_hash = hashes[policy_id]
        record = store.policy_record(policy_id, policy_hash)
        if record is None:
            policy = load_policy(policy_dir, device=device)
            record = evaluate_policy(
                policy,
                policy_id,
                policy_hash,
                suite,
                store,
                pool,
                pi0=pi0,
                kl_states=states,
                pi0_weights=pi0_weights,
                videos=videos,
                video_dir=vdir,
                progress=progress,
            )
            record["source"] = portable_name(policy_dir, ASSETS_DIR)
            record.update(_training_metadata(policy_dir))
            store.append_policy_record(record)
            del policy
        records[policy_id] = add_forgetting(dict(record), base, suite)
    document = {
        "suite": suite.identity(),
        "seeds": suite.seeds,
        "n_per_task": suite.episodes,
        "pi0": {"source": portable_name(pi0_path, ASSETS_DIR), "hash": pi0_hash},
        "policies": records,
        **run_info(),
        **(extra or {}),
    }
    write_json_atomic(store.dir / "results.json", document)
    return document


def check_like_pi0(policy_dir: Path, pi0_record: dict[str, Any]) -> None:
    """A checkpoint must be of pi0's family and see what pi0 sees (cameras, image size): its episodes are
    played with pi0's env settings."""
    record = read_policy_record(policy_dir)
    if record.get("family") != pi0_record.get("family"):
        raise BadInputError(
            f"checkpoint {str(policy_dir)!r} is a {record.get('family')!r} policy but pi0 is {pi0_record.get('family')!r}"
        )
    for key in ("image_keys", "image_size"):
        if record.get(key) != pi0_record.get(key):
            raise BadInputError(
                f"checkpoint {str(policy_dir)!r} has {key}={record.get(key)} but pi0 has {pi0_record.get(key)}; "
                "a fine-tune of pi0 keeps its cameras and image size"
            )


def _training_metadata(policy_dir: Path) -> dict[str, Any]:
    """Which trainer/lr/seed/step produced a checkpoint (read from the checkpoint's config.yaml)."""
    cfg_file = policy_dir.parent / "config.yaml"
    if not cfg_file.is_file():
        return {}
    cfg = OmegaConf.load(cfg_file)
    step = policy_dir.parent.name.removeprefix("step_")
    return {
        "trainer": OmegaConf.select(cfg, "trainer.name"),
        "lr": OmegaConf.select(cfg, "trainer.lr"),
        "kl_coef": OmegaConf.select(cfg, "trainer.kl_coef"),
        "seed": OmegaConf.select(cfg, "seed"),
        "step": int(step) if step.isdigit() else None,
    }


def results_table(document: dict[str, Any]) -> str:
    suite = document["suite"]
    tasks = [*suite["prior_tasks"], suite["new_task"]]
    head = [
        "policy",
        *[f"{t}{' (new)' if t == suite['new_task'] else ''}" for t in tasks],
        "forgetting",
        "fwd KL(pi0‖pi)",
        "rev KL",
        "TV",
        "prior-state KL",
        "drift (1-CKA)",
        "weight L2",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for pid, rec in document["policies"].items():
        cells = [pid]
        for t in tasks:
            r = rec["tasks"][t]
            if "wilson_low" in r:
                cells.append(f"{r['success_rate']:.0%} [{r['wilson_low']:.0%}, {r['wilson_high']:.0%}]")
            else:  # results written before intervals were recorded
                cells.append(f"{r['success_rate']:.0%} ± {r['sem']:.0%}")
        f = rec["forgetting"]
        cells.append(f"{f['mean']:+.0%} ± {f['mean_sem']:.0%}")
        d = rec.get("divergence") or {}
        cells += [
            _num(d.get("forward_kl"), d.get("forward_kl_sem")),
            _num(d.get("reverse_kl")),
            _num(d.get("tv")),
            _num(d.get("prior_forward_kl"), d.get("prior_forward_kl_sem")),
            _num(d.get("representation_drift")),
            f"{rec.get('weight_l2_from_pi0', 0.0):.3g}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    n = document["n_per_task"]
    states = next((r.get("divergence", {}).get("kl_states") for r in document["policies"].values()), None)
    lines.append(
        f"\nN = {n} held-out episodes per task and policy (seeds {document['seeds'][0]}..{document['seeds'][-1]}); "
        f"KL over {int(states or 0)} cached new-task states from pi0's rollouts (SE clustered by episode); "
        "success with its 95% Wilson interval; forgetting ± its SE paired over seeds; "
        "prior-state KL = forward KL on each prior task's states from pi0's rollouts, averaged."
    )
    return "\n".join(lines) + "\n"


def _num(value: float | None, sem: float | None = None) -> str:
    if value is None:
        return "-"
    return f"{value:.3g} ± {sem:.2g}" if sem is not None else f"{value:.3g}"


def run(cfg: DictConfig) -> dict[str, Any]:
    suite = SuiteSpec.from_mapping(OmegaConf.to_container(cfg.suite, resolve=True))
    if int(cfg.videos) < 0:
        raise BadInputError(f"videos must be >= 0, got {cfg.videos}")
    checkpoints = expand_checkpoints([str(p) for p in cfg.checkpoints], bool(cfg.all_checkpoints))
    with EnvPool(engine_settings(cfg)) as pool:
        document = run_suite(
            cfg.pi0,
            checkpoints,
            suite,
            cfg.out_dir,
            videos=int(cfg.videos),
            video_dir=cfg.video_dir,
            device=str(cfg.device),
            pool=pool,
            scale_out=ScaleOutSettings.from_mapping(OmegaConf.to_container(cfg.scale_out, resolve=True)),
        )
    table = results_table(document)
    print(table)
    (Path(cfg.out_dir) / "results.md").write_text(table)
    print(f"results: {Path(cfg.out_dir) / 'results.json'}")
    return document
