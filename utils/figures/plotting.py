"""Figures for the notebooks: image grids, the noise schedule, noising side by side, loss curves, denoising.

Every function takes tensors of images in [-1, 1] (model space) unless it says otherwise, draws one matplotlib
figure and returns it, so a notebook cell shows it and a script can save it with `fig.savefig(...)`.
"""

import math

import matplotlib.pyplot as plt
import numpy as np
import torch
from einops import rearrange
from matplotlib.figure import Figure
from torch import Tensor

from utils.engine.model import denormalize_img


def _to_picture(img: Tensor):
    """(C, H, W) in [-1, 1] to what imshow wants: (H, W, C) in [0, 1], or (H, W) for one channel."""
    img = denormalize_img(img.detach().float().cpu())
    return img[0].numpy() if img.shape[0] == 1 else rearrange(img, "c h w -> h w c").numpy()


def image_grid(images: Tensor, n_columns: int | None = None, padding: int = 1) -> np.ndarray:
    """Tile images (N, C, H, W) in [-1, 1] into one array for `imshow`: (rows*H, cols*W) for C = 1, else (.., .., C).

    Empty cells and the `padding` pixels between images are white.
    """
    images = denormalize_img(images.detach().float().cpu())
    n, channels, height, width = images.shape
    n_columns = min(n_columns or math.ceil(math.sqrt(n)), n)
    n_rows = math.ceil(n / n_columns)
    padded = torch.ones(n_rows * n_columns, channels, height + padding, width + padding)
    padded[:n, :, :height, :width] = images
    grid = rearrange(padded, "(r q) c h w -> (r h) (q w) c", r=n_rows, q=n_columns)
    grid = grid[: -padding or None, : -padding or None].numpy()  # no padding after the last row and column
    return grid[..., 0] if channels == 1 else grid


def show_images(images: Tensor, title: str | None = None, n_columns: int | None = None, ax=None, size: float = 0.8):
    """A grid of images (N, C, H, W) in [-1, 1] on its own figure (or on `ax`), `size` inches per image."""
    grid = image_grid(images, n_columns)
    if ax is None:
        n_columns = min(n_columns or math.ceil(math.sqrt(len(images))), len(images))
        n_rows = math.ceil(len(images) / n_columns)
        _, ax = plt.subplots(figsize=(size * n_columns, size * n_rows + (0.4 if title else 0)))
    ax.imshow(grid, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    return ax.figure


def show_rows(rows: dict[str, Tensor], size: float = 1.2, title: str | None = None):
    """Several rows of images side by side, one row per entry of `rows` ({row label: (N, C, H, W)})."""
    n_cols = max(len(images) for images in rows.values())
    fig, axes = plt.subplots(len(rows), n_cols, figsize=(size * n_cols + 1.5, size * len(rows)), squeeze=False)
    for r, (label, images) in enumerate(rows.items()):
        for c in range(n_cols):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if c < len(images):
                ax.imshow(_to_picture(images[c]), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        axes[r, 0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=9)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_schedule(betas: Tensor, title: str = "The noise schedule"):
    """beta_t, alpha_bar_t, sqrt(alpha_bar_t) (how much image is left) and sqrt(1 - alpha_bar_t) (how much noise)."""
    betas = betas.detach().double().cpu()
    alpha_bars = torch.cumprod(1 - betas, 0)
    t = torch.arange(1, len(betas) + 1)
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.5))
    left.plot(t, betas, color="tab:red")
    left.set(title=r"$\beta_t$: variance added at step t", xlabel="t")
    right.plot(t, alpha_bars, label=r"$\bar\alpha_t$")
    right.plot(t, alpha_bars.sqrt(), label=r"$\sqrt{\bar\alpha_t}$: scale of $x_0$ in $x_t$")
    right.plot(t, (1 - alpha_bars).sqrt(), label=r"$\sqrt{1-\bar\alpha_t}$: scale of the noise")
    right.set(title="what is left of the image after t steps", xlabel="t")
    right.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_schedules(alpha_bars: dict[str, Tensor]) -> Figure:
    """alpha_bar_t (left) and log SNR = log(alpha_bar_t / (1 - alpha_bar_t)) (right) against t / T, one line each."""
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 3.6))
    for name, table in alpha_bars.items():
        table = table.double().cpu()
        t = torch.arange(1, len(table) + 1) / len(table)
        left.plot(t, table, label=name)
        right.plot(t, torch.log(table / (1 - table)), label=name)
    left.set(xlabel="t / T", ylabel=r"$\bar\alpha_t$", title=r"how much of $x_0$ survives: $\bar\alpha_t$")
    right.set(xlabel="t / T", ylabel="log SNR", title=r"log SNR$_t$ = log($\bar\alpha_t$ / (1 - $\bar\alpha_t$))")
    right.axhline(0, color="grey", lw=0.5)
    left.legend()
    figure.tight_layout()
    return figure


def plot_losses(history: dict[str, list[tuple[int, float]]], smooth: int = 20, title: str = "Training loss"):
    """The loss per optimizer step (faint), its running mean over `smooth` steps, and the eval loss if logged."""
    fig, ax = plt.subplots(figsize=(7, 3.5))
    if history.get("loss"):
        steps, values = map(list, zip(*history["loss"]))
        ax.plot(steps, values, alpha=0.3, color="tab:blue", label="loss per step")
        if len(values) >= smooth:
            kernel = torch.ones(smooth) / smooth
            running = torch.nn.functional.conv1d(torch.tensor(values)[None, None], kernel[None, None])[0, 0]
            ax.plot(steps[smooth - 1 :], running, color="tab:blue", label=f"mean of {smooth} steps")
    if history.get("eval_loss"):
        steps, values = zip(*history["eval_loss"])
        ax.plot(steps, values, "o-", color="tab:orange", label="eval loss (held-out images)")
    ax.set(xlabel="optimizer step", ylabel="MSE between noise and predicted noise", title=title, yscale="log")
    ax.legend()
    fig.tight_layout()
    return fig


def plot_reconstructions(images_log: list[tuple[int, dict[str, Tensor]]], n_images: int = 6, max_epochs: int = 4):
    """Originals, their noised versions, and the model's reconstructions at a few moments of training.

    Expects the log of `log_reconstructions`, which noises the same images the same way each time.
    """
    if not images_log:
        raise ValueError("no reconstructions were logged: pass a testset to train()")
    picks = (
        images_log
        if len(images_log) <= max_epochs
        else [images_log[round(i * (len(images_log) - 1) / (max_epochs - 1))] for i in range(max_epochs)]
    )
    first = picks[0][1]
    rows = {"original": first["original"][:n_images], "noised": first["noised"][:n_images]}
    for step, images in picks:
        rows[f"rebuilt at\nstep {step}"] = images["reconstructed"][:n_images]
    return show_rows(rows, title="x_0 rebuilt from the predicted noise, as training goes on")


def frame_indices(n_total: int, n_frames: int) -> list[int]:
    """`n_frames` distinct indices into a sequence of `n_total` frames, the first and last included, denser at the end.

    Frame k sits at (n_total - 1) * (1 - (1 - k / (n_frames - 1))^2): the gaps shrink towards the end, where the
    image forms, so the early frames, which are mostly noise, are few.
    """
    n_frames = min(n_frames, n_total)
    if n_frames == 1:
        return [n_total - 1]
    fractions = 1 - (1 - np.linspace(0, 1, n_frames)) ** 2
    indices = np.round(fractions * (n_total - 1)).astype(int)
    return sorted(set(indices.tolist()))


def plot_denoising(steps: Tensor, n_samples: int = 4, n_frames: int = 10):
    """One row per sample, from pure noise x_T (left) to the sample x_0 (right), at the steps `frame_indices` picks.

    Args:
        steps: what `sample(model, n, return_all_steps=True)` returns, (T + 1, N, C, H, W), x_T first, in [-1, 1]
            (values outside are clipped for display).
        n_samples: rows shown, the first samples of the batch.
        n_frames: columns shown.
    """
    max_steps = steps.shape[0] - 1
    indices = frame_indices(steps.shape[0], n_frames)
    rows = {f"sample {i + 1}": steps[indices, i] for i in range(min(n_samples, steps.shape[1]))}
    return show_rows(rows, title="Denoising, left to right: " + ", ".join(f"x_{max_steps - k}" for k in indices))
