"""The denoising of a few samples, x_T -> x_0, as an animated GIF (the strip of frames is utils.figures.plotting.plot_denoising).

It takes the sequence that Part 1's `sample(model, n, return_all_steps=True)` returns: shape (T + 1, N, C, H, W),
x_T first and x_0 last. With the linear schedule most of the picture appears in the last few hundred of the T steps,
so the frames shown are spaced more densely towards the end of sampling.
"""

import io
from pathlib import Path

import numpy as np
from PIL import Image
from torch import Tensor

from utils.figures.plotting import frame_indices, image_grid


def denoising_gif(
    steps: Tensor,
    path: str | Path | None = None,
    n_samples: int = 16,
    n_frames: int = 40,
    scale: int = 3,
    frame_ms: int = 60,
    hold_last_ms: int = 2000,
) -> bytes:
    """An animated GIF of the first `n_samples` samples denoising together, in a square grid.

    Args:
        steps: (T + 1, N, C, H, W), x_T first, values in [-1, 1].
        path: where to write the GIF too (optional).
        n_samples: images in the grid.
        n_frames: frames of the animation, chosen by `frame_indices`.
        scale: each pixel becomes scale x scale pixels (28x28 images are tiny on screen).
        frame_ms, hold_last_ms: how long each frame, and the final samples, stay on screen.
    Returns:
        The GIF file's bytes; in a notebook, `IPython.display.Image(data=gif)` plays it.
    """
    frames = []
    for index in frame_indices(steps.shape[0], n_frames):
        grid = image_grid(steps[index, :n_samples], padding=1)
        pixels = (grid * 255).round().astype(np.uint8).repeat(scale, axis=0).repeat(scale, axis=1)
        frames.append(Image.fromarray(pixels))
    durations = [frame_ms] * (len(frames) - 1) + [hold_last_ms]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=durations, loop=0)
    data = buffer.getvalue()
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_bytes(data)
    return data
