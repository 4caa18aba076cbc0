"""Videos: frames of episodes and the open-loop world-model report, written as GIF files.

GIF because imageio writes it without ffmpeg (imageio-ffmpeg is not a dependency) and
the MLflow UI shows it inline. Everything here is NumPy on host arrays; the run
directory (``agent/rundir.py``) decides where files go.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from dreamerbench.core.files import writing

CONTEXT_COLOR = np.array([0, 255, 0], np.uint8)
"""Border of frames the world model observed (posterior), as in danijar/dreamerv3 ``report``."""
OPENLOOP_COLOR = np.array([255, 0, 0], np.uint8)
"""Border of frames the world model predicted open loop (prior, replayed actions)."""


def write_video(path: Path, frames: np.ndarray, fps: float = 20.0) -> Path:
    """Write `frames` [T, H, W, 3] uint8 as an animated GIF at `path`, atomically (temp file,
    rename).

    Raises ValueError for frames of another shape or dtype.
    """
    import imageio.v3 as iio

    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or not len(frames):
        raise ValueError(
            f"video frames have shape {frames.shape} and dtype {frames.dtype}; "
            "expected [T>0, H, W, 3] uint8"
        )
    path = Path(path)
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".tmp-{path.name}")
        iio.imwrite(tmp, frames, extension=".gif", duration=1000 / fps, loop=0)
        os.replace(tmp, path)
    return path


def rgb(image: np.ndarray) -> np.ndarray:
    """[..., H, W, C] uint8 with C in {1, 3, 4, ...} -> [..., H, W, 3]: gray repeated, extra
    channels dropped."""
    image = np.asarray(image)
    if image.shape[-1] == 1:
        return np.repeat(image, 3, -1)
    return image[..., :3]


def image_key(obs_space: Mapping) -> str | None:
    """The first image observation key (sorted), or None for a task without images."""
    keys = sorted(k for k, space in obs_space.items() if space.is_image)
    return keys[0] if keys else None


def openloop_plot(true: np.ndarray, pred: np.ndarray, context: int, max_dims: int = 12) -> bytes:
    """The open-loop report of vector observations as PNG bytes: one panel per dimension (the
    first `max_dims`), true values solid, predictions dashed, over the steps of one window.

    `true`, `pred`: [T, D]; the first `context` steps were observed (green background), the
    rest predicted open loop (red background), as the colours of :func:`openloop_grid`.
    """
    import io

    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    from matplotlib.figure import Figure

    true, pred = np.asarray(true, np.float32), np.asarray(pred, np.float32)
    if true.shape != pred.shape or true.ndim != 2:
        raise ValueError(f"true {true.shape} and pred {pred.shape} must both be [T, D]")
    dims = min(true.shape[1], max_dims)
    cols = min(dims, 4)
    rows = -(-dims // cols)
    figure = Figure(figsize=(3 * cols, 2 * rows), dpi=80)
    steps = np.arange(len(true))
    for dim in range(dims):
        axis = figure.add_subplot(rows, cols, dim + 1)
        axis.axvspan(-0.5, context - 0.5, color="green", alpha=0.1)
        axis.axvspan(context - 0.5, len(true) - 0.5, color="red", alpha=0.1)
        axis.plot(steps, true[:, dim], color="black", label="true")
        axis.plot(steps, pred[:, dim], color="tab:blue", linestyle="--", label="predicted")
        axis.set_title(f"dim {dim}", fontsize=8)
        axis.tick_params(labelsize=6)
    figure.axes[0].legend(fontsize=6)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def openloop_grid(true: np.ndarray, pred: np.ndarray, context: int) -> np.ndarray:
    """The open-loop report video: per sequence, true / predicted / error frames stacked vertically,
    sequences side by side, each framed by a 2-pixel border; frames [T, 3 H + 4, B (W + 4), 3]
    uint8.

    `true`, `pred`: [B, T, H, W, 3] uint8; the first `context` steps were observed (green border),
    the rest predicted open loop (red border). Error = (pred - true + 255) / 2, so grey (127) is
    no error (the reference's ``report`` in danijar/dreamerv3 ``agent.py`` shows the same three).
    """
    true, pred = np.asarray(true), np.asarray(pred)
    if true.shape != pred.shape or true.ndim != 5:
        raise ValueError(f"true {true.shape} and pred {pred.shape} must both be [B, T, H, W, 3]")
    error = ((pred.astype(np.int32) - true.astype(np.int32) + 255) // 2).astype(np.uint8)
    video = np.concatenate([true, pred, error], 2)  # [B, T, 3H, W, 3]
    B, T, H, W, _ = video.shape
    border = np.where((np.arange(T) < context)[:, None], CONTEXT_COLOR, OPENLOOP_COLOR)  # [T, 3]
    framed = np.broadcast_to(
        border[None, :, None, None, :], (B, T, H + 4, W + 4, 3)
    ).copy()  # H here is 3 H
    framed[:, :, 2:-2, 2:-2] = video
    return framed.transpose(1, 2, 0, 3, 4).reshape(T, H + 4, B * (W + 4), 3)
