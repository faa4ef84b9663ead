"""The map between pixel values in [0, 1] and model inputs in [-1, 1], the range the forward process assumes (DDPM
section 3.3): datasets normalize into it, and figures and logs map back out of it."""

from torch import Tensor


def normalize_img(img: Tensor) -> Tensor:
    """Pixels in [0, 1] to model inputs in [-1, 1], the range the forward process assumes (DDPM section 3.3)."""
    return img * 2 - 1


def denormalize_img(img: Tensor) -> Tensor:
    """Model outputs in [-1, 1] back to pixels in [0, 1], clamped, for display."""
    return ((img + 1) / 2).clamp(0, 1)
