"""The one broadcast helper of the course: a value per image, shaped to multiply a batch of images."""

import torch
from torch import Tensor


def per_image(values: Tensor, like: Tensor) -> Tensor:
    """Reshape per-image scalars `values` of shape (B,) to (B, 1, ..., 1) so they broadcast against `like`.

    `like` has shape (B, C, H, W) (or any (B, ...)); the result has `like.ndim` dimensions. This is how a per-image
    sqrt(alpha_bar_t) multiplies a batch of images in one expression.
    """
    if values.ndim != 1 or values.shape[0] != like.shape[0]:
        raise ValueError(
            f"per_image expects one value per image, shape ({like.shape[0]},); got shape {tuple(values.shape)}"
        )
    return values.reshape(-1, *([1] * (like.ndim - 1))).to(like.dtype)


def as_step_tensor(t: int | Tensor, device: torch.device | str | None = None) -> Tensor:
    """A step count `t` (an int or a tensor of ints) as a long tensor on `device`."""
    if isinstance(t, Tensor):
        if t.is_floating_point():
            raise TypeError(f"time steps must be integers (1, ..., T); got a {t.dtype} tensor")
        return t.to(device=device if device is not None else t.device, dtype=torch.long)
    if isinstance(t, bool) or not isinstance(t, int):
        raise TypeError(f"a time step must be an int or a tensor of ints; got {type(t).__name__}")
    return torch.tensor(t, dtype=torch.long, device=device)
