"""In-training evaluation's decode setting: greedy by default, sampled per episode when asked."""

from __future__ import annotations

import pytest

from vla_razor.errors import BadInputError
from vla_razor.evaluation.in_training import InTrainingEvaluator
from vla_razor.sampling import GREEDY


def _evaluator(tmp_path, **kwargs) -> InTrainingEvaluator:
    return InTrainingEvaluator(tmp_path, {"task": "lift"}, pool=None, episodes=4, seed=100000, **kwargs)  # type: ignore[arg-type]


def test_decode_modes(tmp_path) -> None:
    assert _evaluator(tmp_path).sampling is GREEDY
    sampled = _evaluator(tmp_path, decode="sampled", temperature=0.5).sampling
    assert not sampled.greedy and sampled.temperature == 0.5 and sampled.episode_seed == 100000
    with pytest.raises(BadInputError, match="eval.decode='top_k' is not one of greedy, sampled"):
        _evaluator(tmp_path, decode="top_k")
