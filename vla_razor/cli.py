"""``vla-razor <verb> [hydra overrides]``: the command-line entry point.

Each verb has a primary hydra config ``configs/<verb>.yaml`` and an implementation
``vla_razor/commands/<verb>.py`` exposing ``run(cfg)``. Overrides, ``--multirun`` sweeps and
``--cfg job`` work as hydra users expect, e.g.::

    vla-razor demos task=lift episodes=50
    vla-razor rollout task=pick_place_can policy=expert episodes=3
    vla-razor demos -m task=lift,stack episodes=20
"""

from __future__ import annotations

import importlib
import logging
import sys

from vla_razor.config import config_dir, register_resolvers
from vla_razor.errors import DISK_FULL_ERRNOS, DiskFullError, UserError
from vla_razor.preemption import exit_code_on_preemption

VERBS: dict[str, str] = {
    "demos": "collect scripted-expert demonstrations into HDF5 (robomimic layout)",
    "rollout": "roll out a policy (expert or checkpoint) and record one mp4 per episode into videos/",
    "train": "fine-tune a policy: trainer=bc|bc_kl|ppo|rft task=... policy=tiny|openvla [resume=true]",
    "pretrain": "train the tiny VLA's base policy pi0 on the suite's prior skills (multi-task BC)",
    "eval": "held-out suite: prior-skill success, new-task success, KL(pi0||pi) for pi0 and checkpoints",
    "razor": "the RL's Razor study: train a sweep, evaluate every checkpoint, write report.md "
    "(--from-results DIR [--compare OTHER])",
    "forecast": "forgetting from new-task KL alone: calibrate on evaluated results, forecast checkpoints",
    "quickstart": "the main job on the built-in default (see README)",
}


def _usage() -> str:
    width = max(map(len, VERBS))
    lines = ["usage: vla-razor <verb> [key=value ...] [hydra flags]", "", "verbs:"]
    lines += [f"  {verb:<{width}}  {text}" for verb, text in VERBS.items()]
    lines += ["", "`vla-razor <verb> --cfg job` prints the resolved config; `--help` lists config groups."]
    return "\n".join(lines)


# Flag sugar -> (hydra key, what the flag's value is, for the error when it is missing).
FLAGS = {
    "--from-results": ("from_results", "a results directory"),
    "--compare": ("compare", "a second recorded study's directory"),
}


def _translate_flags(argv: list[str]) -> list[str]:
    """``--from-results DIR`` and ``--compare DIR`` (razor) are sugar for the hydra overrides
    ``from_results=DIR`` and ``compare=DIR``."""
    out: list[str] = []
    it = iter(argv)
    for arg in it:
        flag, eq, inline = arg.partition("=")
        if flag not in FLAGS:
            out.append(arg)
            continue
        key, what = FLAGS[flag]
        value = inline if eq else next(it, None)
        if value is None:
            raise SystemExit(f"error: {flag} needs {what}")
        out.append(f"{key}={value}")
    return out


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in {"-h", "--help", "help"}:
        print(_usage())
        return
    verb = argv.pop(0)
    if verb not in VERBS:
        raise SystemExit(f"error: unknown verb {verb!r}; valid verbs: {', '.join(VERBS)}")
    argv = _translate_flags(argv)

    # Imported once the verb is known, not to break a cycle: `vla-razor --help` and a mistyped verb answer
    # at once, without loading hydra, torch and the simulator (seconds on a 2-core machine).
    import hydra
    from omegaconf import DictConfig

    from vla_razor.commands.common import register_config_tasks
    from vla_razor.schemas import register_schemas

    module = importlib.import_module(f"vla_razor.commands.{verb}")

    def _task(cfg: DictConfig) -> None:
        logging.getLogger("vla_razor").setLevel(logging.INFO)
        logging.getLogger("OpenGL").setLevel(logging.WARNING)  # "no OpenGL_accelerate" is noise
        try:
            # A scheduler's SIGTERM/SIGUSR1: stop cleanly (training: after a checkpoint) and exit 75.
            with exit_code_on_preemption():
                register_config_tasks(cfg)
                module.run(cfg)
        except UserError as exc:
            # Bad input is reported as one line. Anything else is a bug and keeps its traceback: a
            # ValueError from deep inside torch or robosuite must not read like a typo in a config.
            raise SystemExit(f"error: {exc}") from None
        except OSError as exc:  # a full disk is the user's to fix, like bad input: one line
            if exc.errno not in DISK_FULL_ERRNOS:
                raise
            raise SystemExit(f"error: {DiskFullError(exc)}") from None

    _task.__module__ = module.__name__
    register_resolvers()
    register_schemas()
    sys.argv = [f"vla-razor {verb}", *argv]
    hydra.main(config_path=str(config_dir()), config_name=verb, version_base="1.3")(_task)()


if __name__ == "__main__":
    main()
