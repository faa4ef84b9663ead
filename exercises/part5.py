# GENERATED from solutions/part5.py by `python -m utils.authoring.build`: the reference with each exercise's body
# replaced by a stub. This file is yours: fill in the stubs, then run `pytest tests/test_part5.py`.
# Rebuilding never overwrites this file once you have edited it.
# content-hash: 885f510adaf96ac3
"""Part 5: the ODE view of diffusion, and flow matching on the same U-Net.

Follows four papers after DDIM:

    Song et al., "Score-Based Generative Modeling through Stochastic Differential Equations" (ICLR 2021), section 4.3:
        every diffusion model has a deterministic twin, the probability-flow ODE, with the same marginals q(x_t).
    Karras, Aittala, Aila and Laine, "Elucidating the Design Space of Diffusion-Based Generative Models" (NeurIPS
        2022, "EDM"): eq. 4 (the ODE in sigma), eq. 5 (the time steps, rho = 7) and Algorithm 1 (Heun's method).
    Lipman et al., "Flow Matching for Generative Modeling" (ICLR 2023), and Liu, Gong and Liu, "Flow Straight and
        Fast" (ICLR 2023, rectified flow): a network trained to predict the velocity along straight paths.

Symbols and their names here:

    sigma_t     sqrt((1 - alpha_bar_t) / alpha_bar_t): the noise-to-signal ratio of x_t, 0 for a clean image
    z           x_t / sqrt(alpha_bar_t) = x_0 + sigma_t eps: the state of the ODE in sigma (Karras's x)
    D(z; sigma) the denoised image, x0_hat, the same x0_hat as Part 4's `predict_x0`
    dz/dsigma   (z - D(z; sigma)) / sigma: the probability-flow ODE in sigma (EDM eq. 4 with s(t) = 1, sigma(t) = t)
    s           flow matching's time, a float in [0, 1]: 0 is the clean image, 1 pure noise (the direction of t;
                Lipman et al.'s t runs the other way, s = 1 - t, as in diffusers' SD3 flow-matching scheduler)
    x_s, v      (1 - s) x_0 + s eps, and its velocity dx_s/ds = eps - x_0
    x0_hat, eps_hat  x_s - s v and x_s + (1 - s) v: a flow model read as a diffusion model, whose x_t is
                x_s / sqrt((1 - s)^2 + s^2) at alpha_bar = (1 - s)^2 / ((1 - s)^2 + s^2) (sigma = s / (1 - s))

Time conventions. The DDPM model keeps Part 1's t in {1, ..., T}; between two steps, `sigma_to_t` gives it a
fractional t, which the sinusoidal embedding of Part 2 takes as it takes an integer. Flow matching's s is continuous
from the start, and the sampler runs it from 1 down to 0, as DDPM's sampler runs t from T down to 1.
"""

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

# Part 5 builds on Parts 1 and 2; it copies nothing. The reference by default; to use yours, import from exercises.
from solutions.part2 import Unet
from utils.engine.model import DiffusionModel, per_image

# EDM's choice (section 3): rho = 7 puts more of the steps at small sigma, where the images' details are decided.
RHO = 7.0
# Flow matching's s in [0, 1] is fed to the time embedding as s * FLOW_TIME_SCALE: the same range of angles as the
# integer steps of a T = 1000 DDPM model, so the embedding's frequencies do the same work.
FLOW_TIME_SCALE = 1000.0


# --------------------------------------------------------------------------------------------------------------------
# The ODE view of a DDPM model


def sigmas_of(schedule) -> Tensor:
    """sigma_t = sqrt((1 - alpha_bar_t) / alpha_bar_t) for t = 1, ..., T, float64 on the CPU (Apple's MPS has no
    float64), shape (T,), rising with t."""
    alpha_bars = schedule.alpha_bars.detach().cpu().double()
    return ((1 - alpha_bars) / alpha_bars).sqrt()


def sigma_to_t(schedule, sigma: float) -> float:
    """The (fractional) step t whose sigma_t is `sigma`: log sigma_t interpolated linearly between integer steps.

    The DDPM model was trained at t in {1, ..., T}; an ODE solver asks for it at any sigma in [sigma_1, sigma_T].
    """
    log_sigmas = sigmas_of(schedule).log().cpu()
    log_sigma = torch.tensor(sigma, dtype=torch.float64).log()
    if not log_sigmas[0] - 1e-6 <= log_sigma <= log_sigmas[-1] + 1e-6:
        raise ValueError(
            f"sigma = {sigma:.4g} lies outside the model's range [{log_sigmas[0].exp():.4g}, {log_sigmas[-1].exp():.4g}]"
            f" (sigma_1 to sigma_T): a DDPM model knows only the noise levels it was trained at"
        )
    i = int(torch.searchsorted(log_sigmas, log_sigma).clamp(1, len(log_sigmas) - 1))
    frac = ((log_sigma - log_sigmas[i - 1]) / (log_sigmas[i] - log_sigmas[i - 1])).clamp(0, 1)
    return float(i + frac)  # step i sits at index i - 1: between steps i and i + 1


def pf_ode_drift(model: DiffusionModel, z: Tensor, sigma: float) -> Tensor:
    """The probability-flow ODE of a DDPM model in the sigma parameterisation: dz/dsigma (EDM eq. 4, Song et al. 4.3).

        x_t        = z / sqrt(1 + sigma^2)                  (1 / alpha_bar_t = 1 + sigma_t^2)
        D(z; sigma) = z - sigma eps_theta(x_t, t(sigma))     Part 4's x0_hat, in z's units
        dz/dsigma  = (z - D(z; sigma)) / sigma

    where t(sigma) is the model's (fractional) step for that noise level, `sigma_to_t`. Following this ODE from
    sigma_T down to 0 turns noise into an image with no noise added on the way.

    Args:
        model: a DiffusionModel with its noise schedule.
        z: the state x_t / sqrt(alpha_bar_t), shape (B, C, H, W).
        sigma: the current noise level, a float in [sigma_1, sigma_T] of the model's schedule.
    Returns:
        dz/dsigma, shape (B, C, H, W), the dtype of z.
    """
    raise NotImplementedError("pf_ode_drift is yours to write")


def karras_sigmas(n: int, sigma_min: float, sigma_max: float, rho: float = RHO) -> Tensor:
    """The noise levels of an n-step ODE sampler, EDM eq. 5, with a last entry 0 (the clean image):

        sigma_i = (sigma_max^(1/rho) + i / (n - 1) (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho,   i = 0, ..., n - 1
        sigma_n = 0

    Evenly spaced in sigma^(1/rho), so with rho > 1 the steps crowd near sigma_min.

    Args:
        n: the number of noise levels before 0, at least 2.
        sigma_min, sigma_max: the first and last noise levels, 0 < sigma_min < sigma_max.
        rho: the warp; 1 spaces sigma evenly.
    Returns:
        float64 tensor of shape (n + 1,), falling from sigma_max to sigma_min, then 0.
    """
    raise NotImplementedError("karras_sigmas is yours to write")


def heun_step(drift, x: Tensor, s: float, s_next: float) -> Tensor:
    """One step of Heun's method for dx/ds = drift(x, s), from s to s_next (EDM Algorithm 1, lines 4-8).

        d      = drift(x, s)
        x_next = x + (s_next - s) d                              Euler's step
        if s_next != 0:
            x_next = x + (s_next - s) (d + drift(x_next, s_next)) / 2      corrected by the slope at the end

    At s_next = 0 the step stays Euler's (EDM Algorithm 1 corrects only where t_{i+1} != 0): the ODE in sigma divides
    by sigma there. Flow matching's velocity is defined at s = 0, so there the rule is not forced: it is kept so that
    one function serves both ODEs, and it saves a model call.

    Args:
        drift: a function (x, s) -> dx/ds, shape of x.
        x: the state at s, shape (B, C, H, W).
        s, s_next: floats, the current and the next time.
    Returns:
        The state at s_next, shape (B, C, H, W).
    """
    raise NotImplementedError("heun_step is yours to write")


@torch.no_grad()
def karras_sample(model: DiffusionModel, n_samples: int, steps: int, rho: float = RHO, x_T: Tensor | None = None):
    """Sample a DDPM model by its probability-flow ODE with Heun's method on EDM's noise levels (EDM Algorithm 1).

        sigmas = karras_sigmas(steps, sigma_1, sigma_T, rho)
        z      = x_T sqrt(1 + sigma_T^2),   x_T ~ N(0, I)
        for i = 0, ..., steps - 1:   z = heun_step(pf_ode_drift, z, sigmas[i], sigmas[i + 1])
        return z                      at sigma = 0, z is x_0

    2 steps - 1 model calls: two per step but the last.

    Args:
        model: a DiffusionModel with its noise schedule.
        n_samples: B.
        steps: the number of noise levels before 0, at least 2.
        rho: the warp of `karras_sigmas`.
        x_T: the starting noise, shape (B, C, H, W); drawn from N(0, I) if None.
    Returns:
        x_0, shape (B, C, H, W).
    """
    schedule = model.noise_schedule
    all_sigmas = sigmas_of(schedule)
    sigmas = karras_sigmas(steps, float(all_sigmas[0]), float(all_sigmas[-1]), rho).tolist()
    if x_T is None:
        x_T = torch.randn(n_samples, *model.image_shape, device=model.device)
    z = x_T * (1 + sigmas[0] ** 2) ** 0.5

    def drift(z: Tensor, sigma: float) -> Tensor:
        return pf_ode_drift(model, z, sigma)

    for sigma, sigma_next in zip(sigmas[:-1], sigmas[1:]):
        z = heun_step(drift, z, sigma, sigma_next)
    return z


# --------------------------------------------------------------------------------------------------------------------
# Flow matching


def flow_interpolate(x_0: Tensor, eps: Tensor, s: Tensor) -> tuple[Tensor, Tensor]:
    """A point on the straight path from an image to noise, and its velocity (rectified flow; Lipman et al. eqs. 22
    and 21 with sigma_min = 0, their time t reversed: s = 1 - t, their data x_1 is x_0 here):

        x_s = (1 - s) x_0 + s eps,      v = dx_s / ds = eps - x_0

    Args:
        x_0: clean images, shape (B, C, H, W).
        eps: standard Gaussian noise, shape (B, C, H, W).
        s: one time per image, shape (B,), floats in [0, 1]; 0 is the image, 1 the noise.
    Returns:
        (x_s, v), each shape (B, C, H, W). v does not depend on s: the path is straight.
    """
    raise NotImplementedError("flow_interpolate is yours to write")


def flow_matching_loss(model: DiffusionModel, x_0: Tensor) -> Tensor:
    """The flow-matching loss of one minibatch, what `diffusion_loss` is to DDPM:

        s ~ Uniform[0, 1], eps ~ N(0, I)         one s and one eps per image
        x_s, v = flow_interpolate(x_0, eps, s)
        loss = || v - v_theta(x_s, s) ||^2        averaged over every pixel of every image

    Args:
        model: a network v_theta(x_s, s) taking s as floats of shape (B,) (a `FlowUnet`), on x_0's device.
        x_0: a minibatch of clean images, shape (B, C, H, W), values in [-1, 1].
    Returns:
        The mean squared error, a scalar float tensor that carries gradients to the model's parameters.
    """
    raise NotImplementedError("flow_matching_loss is yours to write")


def flow_predictions(x_s: Tensor, v: Tensor, s: Tensor) -> tuple[Tensor, Tensor]:
    """What a velocity says about the image and the noise: the flow model's x0_hat and eps_hat at x_s.

    On the straight path x_s = (1 - s) x_0 + s eps with v = eps - x_0, the two equations solve for x_0 and eps:

        x0_hat  = x_s - s v,        eps_hat = x_s + (1 - s) v

    With these, a flow model is a diffusion model in other units: x_s / sqrt((1 - s)^2 + s^2) is a DDPM x_t with
    alpha_bar = (1 - s)^2 / ((1 - s)^2 + s^2), and eps_hat is its noise prediction.

    Args:
        x_s: points on the path, shape (B, C, H, W).
        v: the (predicted) velocity at x_s, shape (B, C, H, W).
        s: one time per image, shape (B,), floats in [0, 1].
    Returns:
        (x0_hat, eps_hat), each shape (B, C, H, W), the dtype of x_s.
    """
    raise NotImplementedError("flow_predictions is yours to write")


@torch.no_grad()
def flow_sample(
    model: DiffusionModel, n_samples: int, steps: int, method: str = "euler", x_1: Tensor | None = None
) -> Tensor:
    """Generate images by following the learned velocity from noise (s = 1) to images (s = 0) in `steps` equal steps.

        x = x_1 ~ N(0, I);  s_i = 1 - i / steps
        euler:  x = x + (s_{i+1} - s_i) v_theta(x, s_i)                  steps model calls
        heun:   x = heun_step(v_theta, x, s_i, s_{i+1})                  2 steps - 1 model calls

    Args:
        model: a velocity network v_theta(x_s, s) with `image_shape`.
        n_samples: B.
        steps: the number of steps, at least 1.
        method: "euler" or "heun".
        x_1: the starting noise, shape (B, C, H, W); drawn from N(0, I) if None.
    Returns:
        x_0, shape (B, C, H, W).
    """
    if method not in ("euler", "heun"):
        raise ValueError(f'method must be "euler" or "heun"; got {method!r}')
    x = torch.randn(n_samples, *model.image_shape, device=model.device) if x_1 is None else x_1
    raise NotImplementedError("flow_sample is yours to write")


class FlowUnet(Unet):
    """Part 2's U-Net as a velocity network v_theta(x_s, s): the same layers, s in [0, 1] in place of t.

    The time embedding is the same `SinusoidalPositionEmbeddings`; it is fed s * FLOW_TIME_SCALE, so that s = 1 turns
    its angles as far as DDPM's t = T = 1000 does. Built without a noise schedule: flow matching has none.
    """

    needs_schedule = False

    def forward(self, images: Tensor, s: Tensor) -> Tensor:
        """Predict the velocity at x_s.

        Args:
            images: x_s, shape (B, C_img, H, W).
            s: shape (B,), floats in [0, 1].
        Returns:
            v_theta(x_s, s), shape (B, C_img, H, W).
        """
        raise NotImplementedError("FlowUnet.forward is yours to write")


# --------------------------------------------------------------------------------------------------------------------
# Given: a small network for 2-D points, to watch the paths of both ODEs


@dataclass(frozen=True)
class ToyMLPConfig:
    """Sizes of the 2-D toy network: points are (2, 1, 1) images, so every function of the course takes them."""

    image_shape: tuple[int, int, int] = (2, 1, 1)
    hidden_size: int = 128  # width of the three hidden layers


class ToyMLP(DiffusionModel):
    """An MLP on 2-D points and a time: eps_theta(x_t, t) with a noise schedule (t / T fed in), v_theta(x_s, s)
    without one (s fed in as it is). Either way the network sees a time in [0, 1] as a float, fractional or not."""

    needs_schedule = False  # a flow model has none; a DDPM one is given its own

    def __init__(self, config: ToyMLPConfig = ToyMLPConfig(), noise_schedule: nn.Module | None = None):
        super().__init__(config, noise_schedule)
        width, size = config.hidden_size, math.prod(config.image_shape)
        self.net = nn.Sequential(
            nn.Linear(size + 1, width), nn.SiLU(), nn.Linear(width, width), nn.SiLU(), nn.Linear(width, width),
            nn.SiLU(), nn.Linear(width, size),
        )  # fmt: skip

    def forward(self, images: Tensor, num_steps: Tensor) -> Tensor:
        time = num_steps.to(images.dtype)
        if self.noise_schedule is not None:
            time = time / len(self.noise_schedule)
        points = rearrange(images, "b c 1 1 -> b c")
        out = self.net(torch.cat([points, rearrange(time, "b -> b 1")], dim=1))
        return rearrange(out, "b c -> b c 1 1")
