"""Rollout videos: one mp4 per episode, written with imageio's ffmpeg plugin.

Frames are buffered in memory (episodes are short: <= a few hundred small frames) and encoded once the
episode ends, so recording never interleaves encoder work with the policy loop; a recorder that is
disabled costs nothing at all.
"""

from __future__ import annotations

import re
from pathlib import Path

import imageio.v2 as imageio
import numpy as np

from vla_razor.errors import BadInputError
from vla_razor.io_utils import atomic_path, ensure_writable_dir


def episode_video_name(task: str, seed: int, success: bool, tag: str | None = None) -> str:
    """File name that carries task, seed and outcome, e.g. ``pick_place_can_seed0042_success.mp4``."""
    parts = [_slug(tag)] if tag else []
    parts += [_slug(task), f"seed{seed:04d}", "success" if success else "failure"]
    return "_".join(parts) + ".mp4"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "x"


class EpisodeRecorder:
    """Collects frames of one episode and writes them as an mp4 (atomically) when asked."""

    def __init__(self, fps: int = 10) -> None:
        if fps <= 0:
            raise BadInputError(f"video fps must be > 0, got {fps}")
        self.fps = fps
        self._frames: list[np.ndarray] = []

    def add(self, frame: np.ndarray) -> None:
        frame = np.asarray(frame)
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[-1] != 3:
            raise ValueError(f"video frames must be uint8 [H, W, 3], got {frame.dtype} {tuple(frame.shape)}")
        self._frames.append(frame.copy())

    def __len__(self) -> int:
        return len(self._frames)

    def save(self, path: str | Path) -> Path:
        """Encode the buffered frames to ``path`` (H.264, yuv420p so every player opens it)."""
        if not self._frames:
            raise ValueError(f"no frames recorded for {str(path)!r}")
        path = Path(path)
        frames = [_even_size(f) for f in self._frames]
        with atomic_path(path) as tmp:
            writer = imageio.get_writer(
                tmp,
                format="FFMPEG",
                mode="I",
                fps=self.fps,
                codec="libx264",
                pixelformat="yuv420p",
                macro_block_size=1,
                quality=8,
            )
            try:
                for frame in frames:
                    writer.append_data(frame)
            finally:
                writer.close()
        self._frames.clear()
        return path


def _even_size(frame: np.ndarray) -> np.ndarray:
    # yuv420p needs even width and height; pad by one row/column of edge pixels instead of resizing.
    h, w = frame.shape[:2]
    pad_h, pad_w = h % 2, w % 2
    if pad_h or pad_w:
        frame = np.pad(frame, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    return frame


def read_video(path: str | Path) -> np.ndarray:
    """Read an mp4 back as uint8 [T, H, W, 3] (used by tests and tools to check what was written)."""
    reader = imageio.get_reader(Path(path), format="FFMPEG")
    try:
        return np.stack([np.asarray(f) for f in reader])
    finally:
        reader.close()


def video_dir(path: str | Path) -> Path:
    return ensure_writable_dir(path, what="video directory")
