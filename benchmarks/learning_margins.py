"""How much room the PPO and RFT learning tests have: exact success probability on the fake reach task
before and after training, over several seeds, with the tests' settings.

    python benchmarks/learning_margins.py --seeds 6

The tests (tests/trainers/test_ppo.py, test_rft.py) require < 0.35 before and > 0.7 after; on a new kind
of CPU, run this and check the worst seed still clears both with room to spare.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the fake task and the tests' settings live with the tests

from tests.trainers.fake_env import FakeReachVectorEnv, success_probability  # noqa: E402
from tests.trainers.test_ppo import SETTINGS as PPO_TEST_SETTINGS  # noqa: E402
from tests.trainers.test_rft import RFT_TEST_SETTINGS  # noqa: E402
from tests.trainers.tiny_policy import tiny_policy_cfg  # noqa: E402
from vla_razor.policies import build_policy  # noqa: E402
from vla_razor.trainers.ppo import PPOSettings, train_ppo  # noqa: E402
from vla_razor.trainers.rft import RFTSettings, train_rft  # noqa: E402


def run(trainer: str, seed: int, iterations: int | None) -> tuple[float, float]:
    policy = build_policy(tiny_policy_cfg(finetune="full", seed=seed))
    before = success_probability(policy)
    env = FakeReachVectorEnv(num_envs=4, horizon=1, threshold=0.5)
    budget = {} if iterations is None else {"num_iterations": iterations}
    with tempfile.TemporaryDirectory() as out:
        if trainer == "ppo":
            settings = PPOSettings(
                **{**PPO_TEST_SETTINGS, "gamma": 0.0, "seed": seed, "save_every": 0, **budget}
            )
            train_ppo(policy, env, settings, out, {}, progress=False)
        else:
            train_rft(
                policy,
                env,
                RFTSettings(**{**RFT_TEST_SETTINGS, "seed": seed, **budget}),
                out,
                {},
                progress=False,
            )
    return before, success_probability(policy)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=6)
    parser.add_argument(
        "--iterations", type=int, default=None, help="instead of the tests' budget (toy runs)"
    )
    args = parser.parse_args()
    for trainer in ("ppo", "rft"):
        results = [run(trainer, seed, args.iterations) for seed in range(args.seeds)]
        for seed, (before, after) in enumerate(results):
            print(f"{trainer} seed {seed}: {before:.3f} -> {after:.3f}")
        print(
            f"{trainer}: before max {max(b for b, _ in results):.3f} (test: < 0.35), "
            f"after min {min(a for _, a in results):.3f} (test: > 0.7)"
        )


if __name__ == "__main__":
    main()
