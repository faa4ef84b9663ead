"""Two interleaved half circles ("two moons"): a 2-D data set that trains in seconds and shows where samples go."""

import math

import torch
from torch import Tensor


def two_moons(n: int, noise: float = 0.05, seed: int = 0) -> Tensor:
    """n points on two interleaved half circles, scaled to about [-1, 1], as (n, 2, 1, 1) "images" of 2 pixels.

    The upper moon is the half circle of radius 1 about (0, 0), the lower one the same turned over and shifted to
    (1, 0.5); every point is jittered by Gaussian noise of standard deviation `noise` (before scaling).
    """
    generator = torch.Generator().manual_seed(seed)
    angle = torch.rand(n, generator=generator) * math.pi
    upper = torch.rand(n, generator=generator) < 0.5
    x = torch.where(upper, angle.cos(), 1 - angle.cos())
    y = torch.where(upper, angle.sin(), 0.5 - angle.sin())
    points = torch.stack([x, y], dim=1) + noise * torch.randn(n, 2, generator=generator)
    centred = (points - torch.tensor([0.5, 0.25])) / torch.tensor([1.5, 1.0])
    return centred.reshape(n, 2, 1, 1)
