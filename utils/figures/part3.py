"""Part 3's figures: real images by class, samples beside real ones, and a score beside its real-data floor.

Every function takes tensors in the model's range [-1, 1] (shape (N, C, H, W)) and returns the matplotlib Figure,
so the notebook shows it and the reference pipeline saves it with `fig.savefig(path)`.
"""

import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from torch import Tensor

from utils.figures.plotting import show_images, show_rows


def show_classes(
    images: Tensor, labels: Tensor, class_names: list[str] | tuple[str, ...], per_class: int = 8
) -> Figure:
    """The first `per_class` images of every class, one row per class, each row named by its class."""
    return show_rows({name: images[labels == k][:per_class] for k, name in enumerate(class_names)}, size=0.8)


def show_samples_and_real(samples: Tensor, real: Tensor, n: int = 64) -> Figure:
    """Generated images (left) beside as many real ones (right), at the same scale, to compare by eye."""
    n = min(n, len(samples), len(real))
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 5.3))
    show_images(samples[:n], "generated", ax=left)
    show_images(real[:n], "real (test set)", ax=right)
    fig.tight_layout()
    return fig


def plot_score_vs_floor(scores: dict[str, dict]) -> Figure:
    """FMNIST-FID (left) and FMNIST-KID (right) of each scored set beside the real-vs-real floor, each with its spread.

    `scores` maps a name to a row of `utils.datasets.scoring.Scoring.score` (all at the same N, against the same
    reference). Error bars: ± the FID's bootstrap sd and the KID's standard error; for the floor, ± the sd over its
    draws of real images. FID from N images is biased upwards, so even real images score above 0: judge a model
    against the floor, never against 0. KID is unbiased: the floor sits near 0 at any N.
    """
    rows = list(scores.values())
    n = rows[0]["n"]
    names = list(scores) + ["real vs real\n(floor)"]
    colors = [f"C{i}" for i in range(len(scores))] + ["gray"]
    fig, axes = plt.subplots(1, 2, figsize=(2.6 * len(names) + 2, 3.5))
    panels = (
        ("FMNIST-FID", "fmnist_fid", "fmnist_fid_sd", "floor", "floor_sd"),
        ("FMNIST-KID", "kid", "kid_se", "kid_floor", "kid_floor_sd"),
    )
    for ax, (metric, value, spread, floor, floor_spread) in zip(axes, panels):
        values = [row[value] for row in rows] + [rows[0][floor]]
        errors = [row[spread] for row in rows] + [rows[0][floor_spread]]
        bars = ax.bar(names, values, yerr=errors, capsize=4, color=colors)
        ax.bar_label(bars, labels=[f"{v:.2f} ± {e:.2f}" for v, e in zip(values, errors)], fontsize=8)
        ax.axhline(0, color="black", lw=0.5)
        ax.set_ylabel(f"{metric} (lower is better)")
        ax.set_title(f"{metric} at N = {n} images")
        ax.margins(y=0.15)
    fig.tight_layout()
    return fig


def plot_floor_against_n(sizes: list[int], floors: list[dict]) -> Figure:
    """The real-vs-real floor of FMNIST-FID (left) and FMNIST-KID (right) against N, each ± its sd over draws.

    `floors[i]` is `Scoring(..., n=sizes[i]).floor`. FID's floor falls with N (its bias); KID's stays about 0.
    """
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    panels = (("FMNIST-FID", "floor", "floor_sd"), ("FMNIST-KID", "kid_floor", "kid_floor_sd"))
    for ax, (metric, value, spread) in zip(axes, panels):
        ax.errorbar(sizes, [f[value] for f in floors], yerr=[f[spread] for f in floors], marker="o", capsize=3)
        ax.axhline(0, color="black", lw=0.5)
        ax.set(xscale="log", xlabel="N (images per set)", ylabel=f"{metric}, real vs real (mean ± sd)")
        ax.set_title(f"{metric} of real images against real images")
    fig.tight_layout()
    return fig
