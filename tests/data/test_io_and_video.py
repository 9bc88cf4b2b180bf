"""Atomic writes, video round-trip, augmentation."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vla_razor.data.steps import random_shift
from vla_razor.io_utils import atomic_path, ensure_writable_dir, write_json_atomic
from vla_razor.video import EpisodeRecorder, episode_video_name, read_video


def test_atomic_path_leaves_old_file_on_failure(tmp_path) -> None:
    target = tmp_path / "result.json"
    write_json_atomic(target, {"a": 1})
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed mid-write")
    assert json.loads(target.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]


def test_uncreatable_dir_is_one_line_error(tmp_path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ValueError, match="cannot be created"):
        ensure_writable_dir(blocker / "sub")


def test_video_round_trip(tmp_path) -> None:
    rec = EpisodeRecorder(fps=10)
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, size=(33, 47, 3), dtype=np.uint8)  # odd sizes exercise the padding
    for t in range(12):
        frame = base.copy()
        frame[:, : 2 + t * 3] = 255  # a bar growing to the right
        rec.add(frame)
    path = rec.save(tmp_path / episode_video_name("pick_place_can", 7, True))
    assert path.name == "pick_place_can_seed0007_success.mp4"
    frames = read_video(path)
    assert frames.shape[0] == 12
    assert frames.shape[1:] == (34, 48, 3)
    # Lossy codec: compare coarse content (the white bar widens over time).
    widths = [(f[:, :, :].mean(axis=(0, 2)) > 240).sum() for f in frames]
    assert widths[-1] > widths[0] + 20


def test_recorder_rejects_bad_frames(tmp_path) -> None:
    rec = EpisodeRecorder()
    with pytest.raises(ValueError, match="uint8"):
        rec.add(np.zeros((8, 8, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="no frames"):
        rec.save(tmp_path / "x.mp4")


def test_random_shift_keeps_shape_and_is_seeded() -> None:
    images = np.random.default_rng(0).integers(0, 255, size=(5, 16, 16, 3), dtype=np.uint8)
    a = random_shift(images, 4, np.random.default_rng(1))
    b = random_shift(images, 4, np.random.default_rng(1))
    assert a.shape == images.shape and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, images)
    np.testing.assert_array_equal(random_shift(images, 0, np.random.default_rng(1)), images)
