"""Toy images for Part 1: color gradients, as pixels in [0, 1] (`utils.engine.model` maps them to [-1, 1])."""

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


# How good are generated gradients? Two questions, each with its own numbers: is each sample a gradient at all
# (the fit residual), and does the set of samples hold as much color as the data (the color ratios). A model can
# pass the first and fail the second: clean gradients, all washed out towards the mean color.


def gradient_fit_residual(images: Tensor) -> Tensor:
    """Per image, the RMS distance (over C*H*W values, in [-1, 1]) to the closest member of `gradient_images`' family.

    The family in [-1, 1]: every channel is a_c + b_c * g(h, w), one ramp g along a direction shared by the channels.
    Least squares over every affine ramp per channel gives a (C, 2) matrix of slopes; one shared direction means that
    matrix has rank 1, and the closest rank-1 matrix costs the smaller singular value squared (Eckart-Young).

    Args:
        images: (N, C, H, W), clamped to [-1, 1] first (as the figures show them); H and W at least 2.
    Returns:
        float64 tensor of shape (N,); real gradients score 0 up to rounding.
    """
    x = images.detach().cpu().double().clamp(-1, 1)  # to the CPU first: Apple's MPS has no float64
    n_images, channels, height, width = x.shape
    ys, xs = torch.meshgrid(
        torch.linspace(-1, 1, height, dtype=torch.float64),
        torch.linspace(-1, 1, width, dtype=torch.float64),
        indexing="ij",
    )
    basis, _ = torch.linalg.qr(torch.stack([torch.ones_like(xs), xs, ys]).flatten(1).T)  # (H*W, 3), orthonormal
    pixels = rearrange(x, "n c h w -> n c (h w)")
    coefficients = pixels @ basis  # (N, C, 3): the constant, then the two slopes
    squared = (pixels - coefficients @ basis.T).pow(2).sum(dim=(1, 2))
    if channels > 1:
        squared = squared + torch.linalg.svdvals(coefficients[..., 1:])[:, -1].pow(2)
    return (squared / (channels * height * width)).sqrt()


def color_stats(images: Tensor) -> dict[str, float]:
    """Four measures of how much color a set of images (N, C, H, W) in [-1, 1] holds (clamped to [-1, 1] first).

    pixel_sd: the standard deviation of all values; saturation: per pixel, the largest channel minus the smallest,
    averaged; color_spread: how much the images' mean colors differ (the standard deviation across images, averaged
    over channels); contrast: how much each image varies inside itself (its standard deviation over pixels, averaged).
    """
    x = images.detach().to("cpu", torch.float32).clamp(-1, 1)
    return {
        "pixel_sd": x.std().item(),
        "saturation": (x.amax(dim=1) - x.amin(dim=1)).mean().item(),
        "color_spread": x.mean(dim=(2, 3)).std(dim=0).mean().item(),
        "contrast": x.std(dim=(2, 3)).mean().item(),
    }


def color_ratios(generated: Tensor, real: Tensor) -> dict[str, float]:
    """`color_stats` of generated images over those of real ones: 1.0 is as colorful as the data, 0.5 half as."""
    ours, theirs = color_stats(generated), color_stats(real)
    return {name: ours[name] / theirs[name] for name in ours}


def describe_gradient_samples(generated: Tensor, real: Tensor) -> str:
    """One line on generated gradients against real ones: N; the fit residual with its standard error, beside the real
    images' own; the color ratios, beside their floor: the ratios of one half of the real images to the other."""
    residuals = gradient_fit_residual(generated)
    stderr = residuals.std().item() / len(residuals) ** 0.5
    ratios = color_ratios(generated, real)
    half = len(real) // 2
    floor = color_ratios(real[:half], real[half:]).values()
    return (
        f"{len(generated)} samples vs {len(real)} real: gradient-fit residual {residuals.mean().item():.4f} "
        f"± {stderr:.4f} (real {gradient_fit_residual(real).mean().item():.4f}); color vs real: "
        + ", ".join(f"{name} {value:.2f}" for name, value in ratios.items())
        + f" (one half of the real images vs the other: {min(floor):.2f} to {max(floor):.2f})"
    )
