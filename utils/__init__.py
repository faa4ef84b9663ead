"""Given code for the course, never an exercise: the bottom layer, which imports nothing from exercises/, solutions/,
graders/ or ddpm_course/.

    engine/      what the exercises and programs build on: DiffusionModel and its eq. 4 helpers, the configs, the run
                 log and the given training loop `fit`, respaced and guided sampling, checkpoints
    datasets/    color gradients, FashionMNIST (and its shipped sample), two moons, the classifier behind FMNIST-FID,
                 and the scoring protocol
    figures/     plots, the U-Net drawings, the denoising animation, each part's figures
    authoring/   the build that makes the stubs and notebooks from their sources
    colab.py     the notebooks' set-up cell where the course is not installed

The programs that run a part end to end and the loader of implementations live one layer up, in ddpm_course/.
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
