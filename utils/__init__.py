"""Given code for the course, never an exercise: the bottom layer, which imports nothing from exercises/, solutions/
or graders/.

    engine/      what the exercises and programs build on: DiffusionModel, the configs, minibatches, the run log, the
                 given training loop `fit`, checkpoints, respaced sampling
    datasets/    color gradients, FashionMNIST (and its shipped sample), the classifier behind FMNIST-FID
    figures/     plots, the U-Net drawings, the denoising animation
    programs/    the runs of a part end to end, for any implementation (whose algorithm is a parameter)
    authoring/   the build that makes the stubs and notebooks from their sources
    impl.py      loading an implementation: exercises, solutions, a .py file or a notebook
    colab.py     the notebooks' set-up cell where the course is not installed
"""

import os
from pathlib import Path

import torch

#: The course's folder, the one holding README.md: where solutions/, exercises/ and data/ are found.
REPO_ROOT = Path(__file__).resolve().parents[1]

#: True under continuous integration (the variable `CI` or `IS_CI` set to 1/true). Notebooks shrink their training
#: runs when it is set, so that they run top to bottom on a 2-core CPU in about a minute.
IS_CI = any(os.environ.get(name, "").strip().lower() in ("1", "true", "yes") for name in ("CI", "IS_CI"))


def get_device(preferred: str | torch.device | None = None) -> torch.device:
    """The device to train on: `preferred` if given, else CUDA if available, else Apple's MPS, else the CPU."""
    if preferred is not None:
        return torch.device(preferred)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")
