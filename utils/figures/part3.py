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


def plot_score_vs_floor(scores: dict[str, float], floor: float, n: int, metric: str = "FMNIST-FID") -> Figure:
    """Bars for each score in `scores` beside the real-vs-real floor measured at the same sample count `n`.

    FID estimated from n images is biased upwards, so even two sets of real images score above 0; a model can only be
    judged against that floor, never against 0.
    """
    names = list(scores) + ["real vs real\n(floor)"]
    values = list(scores.values()) + [floor]
    fig, ax = plt.subplots(figsize=(1.6 * len(names) + 2, 3.5))
    bars = ax.bar(names, values, color=[f"C{i}" for i in range(len(scores))] + ["gray"])
    ax.bar_label(bars, fmt="%.2f")
    ax.set_ylabel(f"{metric} (lower is better)")
    ax.set_title(f"{metric} at N = {n} images")
    ax.margins(y=0.15)
    fig.tight_layout()
    return fig
