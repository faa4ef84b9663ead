"""Part 4's figures: the sampler ladder, a class grid and the guidance sweep (schedules side by side: `plotting`)."""

from collections.abc import Sequence

import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from torch import Tensor

from utils.figures.plotting import image_grid


def _floor_band(ax, row: dict, label: str = "real vs real (floor)") -> None:
    """The floor of a scored row as a dashed line at its mean and a grey band of ± its sd."""
    ax.axhline(row["floor"], color="black", ls="--", lw=1, label=f"{label}, N = {row['n']}: mean ± sd")
    ax.axhspan(row["floor"] - row["floor_sd"], row["floor"] + row["floor_sd"], color="gray", alpha=0.2)


def plot_ladder(ladders: dict[str, list[dict]]) -> Figure:
    """FMNIST-FID ± its sd against the number of model calls, one line per (model, sampler), with the floor's band.

    Each row of a ladder is a dict as `sampler_ladder` makes it ("sampler", "eta", "model_calls", and the scores of
    `Scoring.score`); all rows are scored at one N against one reference, so they share one floor.
    """
    figure, ax = plt.subplots(figsize=(7.5, 4.2))
    markers = {"DDPM": "s", "DDIM eta=0": "o", "DDIM eta=1": "^"}
    for model_name, rows in ladders.items():
        groups: dict[str, list[dict]] = {}
        for row in rows:
            key = row["sampler"] if row["sampler"] == "DDPM" else f"DDIM eta={row['eta']:g}"
            groups.setdefault(key, []).append(row)
        for key, group in groups.items():
            group = sorted(group, key=lambda r: r["model_calls"])
            ax.errorbar(
                [r["model_calls"] for r in group],
                [r["fmnist_fid"] for r in group],
                yerr=[r["fmnist_fid_sd"] for r in group],
                marker=markers.get(key, "x"),
                capsize=3,
                label=f"{model_name}: {key}",
            )
    first = next(iter(ladders.values()))[0]
    _floor_band(ax, first)
    ax.set(
        xscale="log",
        xlabel="model calls per image (sampling steps)",
        ylabel="FMNIST-FID ± sd",
        title=f"The sampler ladder: quality against cost (N = {first['n']}, paired rungs)",
    )
    ax.legend(fontsize=7)
    figure.tight_layout()
    return figure


def show_class_grid(samples: Tensor, class_names: Sequence[str], per_class: int) -> Figure:
    """A grid of samples (K * per_class, C, H, W), class by class, one row per class, named on the left."""
    figure, ax = plt.subplots(figsize=(per_class * 0.7 + 1.6, len(class_names) * 0.7))
    ax.imshow(image_grid(samples, n_columns=per_class), cmap="gray")
    height = samples.shape[-2] + 1
    ax.set_yticks([height * (i + 0.5) for i in range(len(class_names))], class_names)
    ax.set_xticks([])
    ax.set_title("one row per requested class")
    figure.tight_layout()
    return figure


def plot_guidance_sweep(rows: list[dict]) -> Figure:
    """FMNIST-FID ± its sd against the classifier's accuracy on the requested class ± its standard error, one point
    per guidance weight w, with the floor's band."""
    figure, ax = plt.subplots(figsize=(6.5, 4))
    ax.errorbar(
        [r["accuracy"] for r in rows],
        [r["fmnist_fid"] for r in rows],
        xerr=[r["accuracy_se"] for r in rows],
        yerr=[r["fmnist_fid_sd"] for r in rows],
        marker="o",
        capsize=3,
    )
    for row in rows:
        ax.annotate(
            f"w = {row['w']:g}",
            (row["accuracy"], row["fmnist_fid"]),
            textcoords="offset points",
            xytext=(4, 4),
            fontsize=8,
        )
    _floor_band(ax, rows[0])
    ax.set(
        xlabel="classifier's accuracy on the requested class",
        ylabel="FMNIST-FID ± sd",
        title="Guidance: class fidelity against diversity (paired weights)",
    )
    ax.legend(fontsize=8)
    figure.tight_layout()
    return figure
