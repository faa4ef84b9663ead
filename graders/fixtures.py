"""What the graders of several parts share: inputs drawn from a generator of their own, and small schedules and
models whose answers are known exactly (Part 4's graders reuse Part 1's noise schedule and sampler)."""

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from graders.core import expect, expect_subclass
from solutions import part1 as ref
from utils.engine.model import DiffusionModel

# Large betas: with T = 6, alpha_bar falls from 0.9 to about 0.1, so alpha_bar_t and alpha_bar_{t+1} differ a lot.
BIG_BETAS = torch.tensor([0.1, 0.2, 0.3, 0.4, 0.5, 0.6])


def schedule_with(betas: Tensor) -> ref.NoiseSchedule:
    """The reference NoiseSchedule of `betas`."""
    return ref.NoiseSchedule(betas.clone())


def randn(*shape: int, seed: int) -> Tensor:
    """Grader inputs from a generator of their own, independent of any random draws the student's code makes."""
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


@dataclass(frozen=True)
class ShapeOnly:
    """The config of the graders' own small models: they need nothing but the image shape."""

    image_shape: tuple[int, int, int]


def moments(x: Tensor) -> tuple[float, float, float]:
    """Mean, variance and kurtosis (4th standardised moment; 3 for a Gaussian, 1.8 for a uniform) of all entries."""
    x = x.detach().double().flatten()
    mean = x.mean()
    var = x.var()
    kurtosis = ((x - mean) ** 4).mean() / var**2
    return mean.item(), var.item(), kurtosis.item()


def expect_diffusion_model(model, name: str, image_shape: tuple, likely: str | None = None) -> None:
    """`model`, built from the student's class `name`, is a DiffusionModel that kept config.image_shape."""
    expect_subclass(model, DiffusionModel, name, likely)
    expect(
        tuple(getattr(model, "image_shape", ())) == image_shape,
        f"{name} should keep config.image_shape.",
        str(image_shape),
        repr(getattr(model, "image_shape", None)),
        "call super().__init__(config, noise_schedule) first: sample() reads model.image_shape",
    )


class LinearNoisePredictor(DiffusionModel):
    """A known model for grading `sample`: eps_theta(x, t) = a_t x + b_t, with no parameters.

    Sampling with it is a linear Gaussian recursion, so the mean and the variance of every x_t are known exactly.
    It also records the t it is called with and whether gradients were on.
    """

    def __init__(self, schedule: nn.Module, image_shape=(1, 4, 4)):
        super().__init__(ShapeOnly(image_shape), schedule)
        T = len(schedule)
        self.a = torch.linspace(1.0, 1.4, T)  # a[t - 1] is a_t; these keep x_0's variance small (0.22), so
        # that the beta_1 of a wrongly noised last step shows up clearly
        self.b = torch.linspace(0.5, -0.5, T)
        self.calls: list[Tensor] = []
        self.grad_enabled: list[bool] = []

    def forward(self, images: Tensor, num_steps: Tensor) -> Tensor:
        self.calls.append(num_steps.detach().clone())
        self.grad_enabled.append(torch.is_grad_enabled())
        index = num_steps.long() - 1
        return self.a[index].reshape(-1, 1, 1, 1) * images + self.b[index].reshape(-1, 1, 1, 1)

    def exact_moments(self, variant: str = "reference") -> list[tuple[float, float]]:
        """(mean, variance) of x_T, x_{T-1}, ..., x_0 under Algorithm 2, or under a named mistake."""
        s = self.noise_schedule
        T = len(s)
        mean, var = 0.0, 1.0
        moments_ = [(mean, var)]
        for t in range(T, 0, -1):
            beta, alpha = float(s.betas[t - 1]), float(s.alphas[t - 1])
            # "alpha_bar(t - 1)" reads alpha_bars[t - 2]: at t = 1 Python's index -1 wraps to alpha_bar_T
            alpha_bar = float(s.alpha_bars[t - 2 if variant == "alpha_bar(t - 1)" else t - 1])
            a, b = float(self.a[t - 1]), float(self.b[t - 1])
            k = beta / math.sqrt(1 - alpha_bar)
            scale = 1.0 if variant == "no division by sqrt(alpha_t)" else 1 / math.sqrt(alpha)
            c, d = scale * (1 - k * a), -scale * k * b
            noise_var = {"noise at t = 1": beta, "sigma = beta": beta**2, "no noise": 0.0}.get(variant, beta)
            if t == 1 and variant != "noise at t = 1":
                noise_var = 0.0
            mean, var = c * mean + d, c * c * var + noise_var
            moments_.append((mean, var))
        return moments_
