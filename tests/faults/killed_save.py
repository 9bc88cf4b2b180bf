"""A checkpoint save that never finishes, for the SIGKILL-mid-save test.

    python -m tests.faults.killed_save RUN_DIR

Saves step 1 with a real tiny policy, then starts step 2 with a policy whose weights are half-written when
the process announces "saving" and waits to be killed.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from tests.trainers.tiny_policy import tiny_policy_cfg
from vla_razor.policies import build_policy
from vla_razor.trainers.checkpoint import save_checkpoint


class _StalledPolicy:
    def save_pretrained(self, path: Path) -> None:
        path.mkdir(parents=True)
        (path / "policy_config.json").write_text('{"format": "vla-raz')  # cut mid-write
        print("saving", flush=True)
        time.sleep(600)


if __name__ == "__main__":
    run_dir = Path(sys.argv[1])
    save_checkpoint(run_dir, 1, policy=build_policy(tiny_policy_cfg()), trainer_state={"step": 1}, config={})
    save_checkpoint(run_dir, 2, policy=_StalledPolicy(), trainer_state={"step": 2}, config={})
