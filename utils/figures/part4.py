"""Part 4's figures: the sampler ladder, a class grid and the guidance sweep (schedules side by side: `plotting`)."""

from collections.abc import Sequence

import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from torch import Tensor

from utils.figures.plotting import image_grid


def plot_ladder(ladders: dict[str, list[dict]], floor: float, n: int) -> Figure:
    """FMNIST-FID against the number of model calls, one line per (model, sampler), with the real-data floor.

    Each row of a ladder is a dict with "sampler", "eta", "model_calls", "fmnist_fid" (as `sampler_ladder` makes).
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
            ax.plot(
                [r["model_calls"] for r in group],
                [r["fmnist_fid"] for r in group],
                marker=markers.get(key, "x"),
                label=f"{model_name}: {key}",
            )
    ax.axhline(floor, color="black", ls="--", lw=1, label=f"real vs real (floor), N = {n}")
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="model calls per image (sampling steps)",
        ylabel="FMNIST-FID",
        title=f"The sampler ladder: quality against cost (N = {n})",
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
    """FMNIST-FID against the classifier's accuracy on the requested class, one point per guidance weight w."""
    figure, ax = plt.subplots(figsize=(6.5, 4))
    accuracy = [r["accuracy"] for r in rows]
    fid = [r["fmnist_fid"] for r in rows]
    ax.plot(accuracy, fid, marker="o")
    for row in rows:
        ax.annotate(
            f"w = {row['w']:g}",
            (row["accuracy"], row["fmnist_fid"]),
            textcoords="offset points",
            xytext=(4, 4),
            fontsize=8,
        )
    ax.axhline(rows[0]["floor"], color="black", ls="--", lw=1, label=f"real vs real (floor), N = {rows[0]['n']}")
    ax.set(
        xlabel="classifier's accuracy on the requested class",
        ylabel="FMNIST-FID",
        title="Guidance: class fidelity against diversity",
    )
    ax.legend(fontsize=8)
    figure.tight_layout()
    return figure
