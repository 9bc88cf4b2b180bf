"""OpenVLA's action-token convention pinned against hand-computed values."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from vla_razor.policies.action_tokenizer import ActionTokenizer

V = 32000
STEP = 2.0 / 255.0  # width of one bin: 256 edges over [-1, 1]


def test_encode_hand_computed_including_edges() -> None:
    tok = ActionTokenizer(V)
    edge_128 = np.linspace(-1, 1, 256)[128]  # exactly on a bin edge: digitize puts it in the bin above
    acts = np.array([[-1.0, 1.0, 0.0, edge_128, -1.0 + 0.5 * STEP, 1.0 - 0.5 * STEP, 0.5]])
    # digitize indices by hand: -1 -> 1, 1 -> 256, 0 -> 128 (between edges 127 and 128),
    # edge 128 -> 129, inside the first bin -> 1, inside the last bin -> 255, 0.5 -> floor(1.5/STEP)+1 = 192.
    expected = V - np.array([1, 256, 128, 129, 1, 255, 192])
    np.testing.assert_array_equal(tok.encode(acts)[0], expected)
    assert tok.encode(acts).dtype == np.int64


def test_decode_hand_computed() -> None:
    tok = ActionTokenizer(V)
    ids = np.array([V - 1, V - 256, V - 255, V - 128, V - 129, 31744, 31999])
    # clip(V - id - 1, 0, 254) indexes the 255 centers, center k = -1 + (k + 0.5) * STEP.
    k = np.clip(V - ids - 1, 0, 254)
    np.testing.assert_allclose(tok.decode(ids), -1 + (k + 0.5) * STEP, atol=1e-7)
    assert tok.decode(np.array([V - 1]))[0] == pytest.approx(-1 + 0.5 * STEP)
    assert tok.decode(np.array([V - 256]))[0] == pytest.approx(1 - 0.5 * STEP)  # 255 -> clipped to 254
    assert tok.decode(np.array([V - 128]))[0] == pytest.approx(0.0, abs=1e-7)


def test_roundtrip_error_at_most_one_bin_and_torch_decode_matches() -> None:
    tok = ActionTokenizer(V)
    acts = np.random.default_rng(0).uniform(-1, 1, size=(1000, 7))
    ids = tok.encode(acts)
    assert np.abs(tok.decode(ids) - acts).max() <= STEP + 1e-9
    np.testing.assert_allclose(tok.decode(torch.as_tensor(ids)).numpy(), tok.decode(ids), atol=1e-6)


def test_out_of_range_clipped_with_one_warning() -> None:
    tok = ActionTokenizer(V)
    with pytest.warns(UserWarning, match="outside"):
        ids = tok.encode(np.array([[1.7, -3.0, 0, 0, 0, 0, 0]]))
    assert ids[0, 0] == V - 256 and ids[0, 1] == V - 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a second warning would now raise
        tok.encode(np.array([[2.0] * 7]))


def test_slots_and_bad_ids() -> None:
    tok = ActionTokenizer(1000)
    ids = torch.tensor([[744, 999, 800]])
    slots = tok.ids_to_bin_slots(ids)
    assert slots.tolist() == [[0, 255, 56]]
    assert torch.equal(tok.bin_slots_to_ids(slots), ids)
    with pytest.raises(ValueError, match="token id 743 is not an action id"):
        tok.ids_to_bin_slots(torch.tensor([743]))
    with pytest.raises(ValueError, match="7"):
        tok.encode(np.zeros((2, 6)))
