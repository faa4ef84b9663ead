"""Toy images for Part 1: color gradients, as pixels in [0, 1] (`utils.engine.pixels` maps them to [-1, 1])."""

import torch
from einops import rearrange
from torch import Tensor


def gradient_images(n_images: int, img_size: tuple[int, int, int] = (3, 16, 16), seed: int | None = None) -> Tensor:
    """`n_images` color gradients: each runs linearly from one random RGB color to another, in a random direction.

    Returns a float tensor of shape (n_images, C, H, W) with values in [0, 1]. Two images share nothing but their
    structure, so a model that learns "a smooth blend between two colors" has learned this dataset.
    """
    channels, height, width = img_size
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    start = torch.rand(n_images, channels, 1, 1, generator=generator)
    end = torch.rand(n_images, channels, 1, 1, generator=generator)
    angle = torch.rand(n_images, generator=generator) * 2 * torch.pi
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, height), torch.linspace(-1, 1, width), indexing="ij")
    # Position along the gradient's direction, in [0, 1] for every image: (n, H, W).
    along = torch.cos(angle)[:, None, None] * xs + torch.sin(angle)[:, None, None] * ys
    lo = along.amin(dim=(1, 2), keepdim=True)
    hi = along.amax(dim=(1, 2), keepdim=True)
    along = rearrange((along - lo) / (hi - lo), "n h w -> n 1 h w")
    return start + (end - start) * along
