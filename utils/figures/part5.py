"""Part 5's figure: the paths two ODE samplers take from noise to 2-D data, side by side."""

import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from torch import Tensor


def plot_paths(paths: dict[str, Tensor], data: Tensor, n_paths: int = 200) -> Figure:
    """One panel per sampler: the data in grey, and each sample's path from its noise (a small dot) to where it
    ends (a larger one). `paths` maps a title to the states along the way, shape (steps + 1, N, 2, 1, 1) or
    (steps + 1, N, 2); `data` is (M, 2, 1, 1) or (M, 2)."""
    fig, axes = plt.subplots(1, len(paths), figsize=(4.2 * len(paths), 4.2), squeeze=False)
    real = data.reshape(len(data), 2).cpu()
    for ax, (title, states) in zip(axes[0], paths.items()):
        xy = states.reshape(states.shape[0], states.shape[1], 2)[:, :n_paths].cpu()
        ax.scatter(real[:, 0], real[:, 1], s=2, color="0.8", label="data")
        ax.plot(xy[:, :, 0], xy[:, :, 1], color="tab:blue", linewidth=0.5, alpha=0.5)
        ax.scatter(xy[0, :, 0], xy[0, :, 1], s=3, color="tab:orange", label="noise (start)")
        ax.scatter(xy[-1, :, 0], xy[-1, :, 1], s=6, color="tab:blue", label="sample (end)")
        ax.set_title(title, fontsize=10)
        ax.set_xlim(-3, 3)
        ax.set_ylim(-3, 3)
        ax.set_aspect("equal")
    axes[0, 0].legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    return fig
