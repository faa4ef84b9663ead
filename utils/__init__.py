"""Given code for the course: devices, images, plotting, logging, data and the notebook build.

Nothing here is an exercise. The exercises live in `exercises/` (yours to fill in) and `solutions/` (the reference).
"""

import os

import torch

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
