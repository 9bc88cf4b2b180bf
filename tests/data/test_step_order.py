"""BC's batches do not depend on the process: concatenated demo steps keep their observation keys in the
first file's order. BC's augmentation draws its random shifts key by key in that order; keys held in a set
iterated in an order that changes with each process's hash seed (PYTHONHASHSEED), and two processes
started alike trained different weights."""

from __future__ import annotations

import itertools

import numpy as np

from vla_razor.data.steps import StepData

KEYS = ["agentview_image", "robot0_eye_in_hand_image", "proprio"]


def _part(keys: list[str], n: int) -> StepData:
    return StepData(
        {k: np.full((n, 2), i) for i, k in enumerate(keys)},
        np.zeros(n, dtype=np.int64),
        ["lift"],
        np.zeros((n, 7)),
        np.zeros(n, dtype=np.int64),
    )


def test_concatenated_steps_keep_the_first_files_key_order() -> None:
    # Every order of the same keys is kept as given: one fixed iteration order (a set's) cannot match all.
    for keys in itertools.permutations(KEYS):
        steps = StepData.concat([_part(list(keys), 3), _part(sorted(keys), 2)])
        assert list(steps.obs) == list(keys)
        assert [int(steps.obs[k][0, 0]) for k in keys] == [0, 1, 2] and len(steps) == 5
