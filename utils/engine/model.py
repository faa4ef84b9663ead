"""The interface every denoising model in this course implements, and the small helpers every part shares.

`DiffusionModel` is the contract between a network and the diffusion code around it: Part 1's `diffusion_loss`,
`train` and `sample`, and the given `fit` loop, only ever call `model(x_t, t)` and read `model.image_shape` and
`model.noise_schedule`, so Part 2's U-Net drops into the same functions as Part 1's tiny MLP.

One convention for every model of the course: `Model(config, noise_schedule)`. The config is a frozen dataclass that
lives beside its model (`TinyDiffuserConfig` in Part 1, `UnetConfig` in Part 2) and holds the network's sizes, among
them `image_shape`; the noise schedule holds the betas, and so T, the number of noise steps. T lives there and nowhere
else: a network that needs T (to scale t, say) reads `len(self.noise_schedule)`.

    DiffusionModel          the interface: model(x_t, t), image_shape, noise_schedule, device
    check_reaches_noise     does a schedule end in pure noise, as Algorithm 2 assumes?
    betas_from_alpha_bars   the betas of a schedule given by its alpha_bars (respacing, Part 3 and 4)
    per_image               the one broadcast helper: a value per image, shaped to multiply a batch of images
    q_sample                eq. 4, x_t from x_0 and eps
    x0_from_eps             eq. 4 solved for x_0: the clean image that x_t and a noise point to
    eps_from_x0             eq. 4 solved for eps: the noise that takes a clean image to x_t
    as_step_tensor          a step count t as a long tensor
    normalize_img           pixels in [0, 1] to model inputs in [-1, 1] (DDPM section 3.3), and back
"""

import itertools
from abc import ABC, abstractmethod

import torch
from torch import Tensor, nn


class DiffusionModel(nn.Module, ABC):
    """A network eps_theta(x_t, t) that predicts the noise in x_t (the epsilon-prediction of DDPM eq. 11).

    Attributes:
        config: the frozen dataclass it was built from; saved in checkpoints so the same network can be built again.
        image_shape: (C, H, W) of the images it denoises, `config.image_shape`.
        noise_schedule: the NoiseSchedule whose betas its predictions assume, a submodule (so `.to(device)` moves it
            and `state_dict()` saves it). A network may be built without one (None) to look at its layers; training
            and sampling need it.
    """

    def __init__(self, config, noise_schedule: nn.Module | None = None):
        super().__init__()
        self.config = config
        self.image_shape = tuple(config.image_shape)
        self.noise_schedule = noise_schedule

    @abstractmethod
    def forward(self, images: Tensor, num_steps: Tensor) -> Tensor:
        """Predict the noise in `images`.

        Args:
            images: noised images x_t, shape (B, C, H, W), float.
            num_steps: t for each image, shape (B,), integers in {1, ..., T}.
        Returns:
            The predicted noise eps_theta(x_t, t), shape (B, C, H, W).
        """

    # A model that denoises along a noise schedule needs one to train or sample; Part 5's flow models have none.
    needs_schedule: bool = True

    @property
    def device(self) -> torch.device:
        """Where the model computes: that of its schedule's tables, which move with it (`.to(device)`), or, for a
        model that needs no schedule (Part 5's flow models), that of its weights. Read from the schedule, not from
        `next(model.parameters())`: a wrapper (a guided or respaced model) may own no parameters. Raises an error that
        says how to give the model a schedule when it needs one and has none."""
        if self.noise_schedule is not None:
            return self.noise_schedule.betas.device
        if not self.needs_schedule:
            for tensor in itertools.chain(self.parameters(), self.buffers()):
                return tensor.device
        raise ValueError(
            f"this {type(self).__name__} has no noise schedule: build it with one, e.g. "
            f"{type(self).__name__}(config, NoiseSchedule(linear_schedule(T)))"
        )


# What the sampler assumes of a schedule: Algorithm 2 starts from x_T ~ N(0, I), which is q(x_T) only if nothing of
# the image is left after T steps. sqrt(1e-3) is about 3% of the image against noise of standard deviation 1; the
# paper's linear schedule with T = 1000 reaches 4e-5, Part 4's cosine schedule 2e-9.
MAX_ALPHA_BAR_T = 1e-3


def check_reaches_noise(noise_schedule: nn.Module, bound: float = MAX_ALPHA_BAR_T) -> float:
    """Return alpha_bar_T of `noise_schedule`, or raise ValueError if it is above `bound`, saying why that matters."""
    alpha_bar_T = noise_schedule.alpha_bar(len(noise_schedule)).item()
    if alpha_bar_T > bound:
        raise ValueError(
            f"this schedule does not reach noise: alpha_bar_T = {alpha_bar_T:.3g} (T = {len(noise_schedule)}), above "
            f"{bound:g}, so x_T still holds {alpha_bar_T**0.5:.0%} of the image. Sampling starts from pure noise "
            f"N(0, I), which such a model never saw at t = T: its samples come out washed out, towards the mean "
            f"image. Make the betas larger (for T steps, about 1000 / T times the paper's) or T longer."
        )
    return alpha_bar_T


def betas_from_alpha_bars(alpha_bars: Tensor) -> Tensor:
    """beta_t = 1 - alpha_bar_t / alpha_bar_{t-1}, with alpha_bar_0 = 1: the betas whose product gives `alpha_bars`.

    Args:
        alpha_bars: alpha_bar_1, ..., alpha_bar_T, shape (T,), float.
    Returns:
        beta_1, ..., beta_T, shape (T,), in the dtype of `alpha_bars`.
    """
    previous = torch.cat([alpha_bars.new_ones(1), alpha_bars[:-1]])  # alpha_bar_{t-1}, with alpha_bar_0 = 1
    return 1 - alpha_bars / previous


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


# Eq. 4 and its two inverses, for given code (the samplers' clipping, Part 1's noise_img and TinyDiffuser). Students
# write eq. 4 themselves in Part 1's q_eq4 and its inverse in reconstruct; everything else calls these three.
# `alpha_bar` is alpha_bar_t already shaped to broadcast against the images (per_image), or one number for all.


def q_sample(x_0: Tensor, eps: Tensor, alpha_bar: Tensor | float) -> Tensor:
    """x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps: DDPM eq. 4, q(x_t | x_0), with the noise eps given."""
    return alpha_bar**0.5 * x_0 + (1 - alpha_bar) ** 0.5 * eps


def x0_from_eps(x_t: Tensor, eps: Tensor, alpha_bar: Tensor | float) -> Tensor:
    """x0_hat = (x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t): eq. 4 solved for x_0."""
    return (x_t - (1 - alpha_bar) ** 0.5 * eps) / alpha_bar**0.5


def eps_from_x0(x_t: Tensor, x_0: Tensor, alpha_bar: Tensor | float) -> Tensor:
    """eps = (x_t - sqrt(alpha_bar_t) x_0) / sqrt(1 - alpha_bar_t): eq. 4 solved for the noise."""
    return (x_t - alpha_bar**0.5 * x_0) / (1 - alpha_bar) ** 0.5


def as_step_tensor(t: int | Tensor, device: torch.device | str | None = None) -> Tensor:
    """A step count `t` (an int or a tensor of ints) as a long tensor on `device`."""
    if isinstance(t, Tensor):
        if t.is_floating_point():
            raise TypeError(f"time steps must be integers (1, ..., T); got a {t.dtype} tensor")
        return t.to(device=device if device is not None else t.device, dtype=torch.long)
    if isinstance(t, bool) or not isinstance(t, int):
        raise TypeError(f"a time step must be an int or a tensor of ints; got {type(t).__name__}")
    return torch.tensor(t, dtype=torch.long, device=device)


def normalize_img(img: Tensor) -> Tensor:
    """Pixels in [0, 1] to model inputs in [-1, 1], the range the forward process assumes (DDPM section 3.3)."""
    return img * 2 - 1


def denormalize_img(img: Tensor) -> Tensor:
    """Model outputs in [-1, 1] back to pixels in [0, 1], clamped, for display."""
    return ((img + 1) / 2).clamp(0, 1)
