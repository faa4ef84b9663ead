"""Sampling a trained model otherwise than it was trained: in fewer steps, with guidance, with its x0_hat clipped.

Every sampler of the course (Part 1's `sample`, Part 4's `ddim_sample`) calls `model(x_t, t)` and nothing else, so each
variation here is a DiffusionModel wrapped around the trained one:

    RespacedModel       the same model on a subsequence of its steps (Improved DDPM, section 4)
    GuidedModel         a class-conditional model asked for given classes with classifier-free guidance
    ClippedPrediction   the model with its predicted clean image clipped to [-1, 1]
    ClippedVelocity     a flow-matching model (Part 5) with its predicted clean image clipped the same way

Respacing. Nichol and Dhariwal, "Improved Denoising Diffusion Probabilistic Models" (ICML 2021), section 4: a model trained with
T steps can sample along any increasing subsequence tau_1 < ... < tau_S = T of its time steps. The forward process
restricted to that subsequence is again a diffusion, with

    alpha_bar'_i = alpha_bar_{tau_i},   beta'_i = 1 - alpha_bar'_i / alpha_bar'_{i-1}   (alpha_bar'_0 = 1),

so Part 1's unchanged `sample` (Algorithm 2) runs on it in S steps, asking the model about time tau_i at step i.
Its fresh noise has variance beta'_i, the larger of DDPM's two choices; DDIM at eta = 1 (Part 4) takes the same mean
with the smaller, (1 - alpha_bar'_{i-1}) / (1 - alpha_bar'_i) beta'_i, and the difference grows as S shrinks (DDIM's
Table 1, its sigma-hat row). Samples get a little noisier as S shrinks; a few hundred steps are close to the full
1000, and a few dozen still show clothes, which is what a CPU (or CI) can afford.

Guidance. To sample class y with guidance weight w, wrap the conditional model: `GuidedModel(model, labels, w, guided_eps)`
answers `model(x_t, t)` with your `guided_eps(model, x_t, t, labels, w)` (Ho and Salimans 2022, eq. 6).

Clipping. Every sampler of the course steps through x0_hat = (x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t), explicitly
(DDIM) or implicitly (DDPM's mean, eq. 11). Where alpha_bar_t is tiny, as at t = T of the cosine schedule
(alpha_bar_T ~ 2e-9), the model's small errors in eps are divided by sqrt(alpha_bar_t) ~ 5e-5: x0_hat lands far
outside [-1, 1], and the next step carries that blow-up into every later one. Improved DDPM (Nichol and Dhariwal 2021,
their code's `clip_denoised`) and diffusers' schedulers (`clip_sample`) clip x0_hat to [-1, 1]. `ClippedPrediction`
does the same for any sampler, without changing it: it answers with the noise that points to the clipped x0_hat,

    eps' = (x_t - sqrt(alpha_bar_t) clip(x0_hat, -1, 1)) / sqrt(1 - alpha_bar_t),

so that DDIM's step and DDPM's mean both see the clipped clean image. Part 5's ODE samplers ask the model at
fractional steps t (between two noise levels of the schedule); there alpha_bar_t is read off the same interpolation
that chose t (`fractional_alpha_bar`), so the clean image the ODE sees is exactly the clipped one. A flow-matching
model predicts the velocity v = eps - x_0 on x_s = (1 - s) x_0 + s eps, whose clean image is x_s - s v;
`ClippedVelocity` clips that one, so that a ladder can treat every sampler alike.
"""

from collections.abc import Callable

import torch
from torch import Tensor

from utils.engine.model import DiffusionModel, betas_from_alpha_bars, eps_from_x0, per_image, x0_from_eps


def spaced_steps(max_steps: int, n_steps: int, device: torch.device | str | None = None) -> Tensor:
    """The S = `n_steps` time steps tau_1 < ... < tau_S of {1, ..., T} that fast samplers visit, evenly spaced.

    tau_1 = 1 and tau_S = T, the rest rounded from a linear spacing (S = 1 gives tau_1 = T alone). Respaced DDPM
    (`RespacedModel`) and DDIM (Part 4) both sample along it, from tau_S = T down to tau_1, then to x_0.

    Returns:
        long tensor of shape (S,), increasing.
    """
    if not 1 <= n_steps <= max_steps:
        raise ValueError(f"the number of sampling steps must lie in 1..T = {max_steps}; got {n_steps}")
    if n_steps == 1:
        return torch.tensor([max_steps], device=device)
    # a spacing of (T - 1) / (S - 1) >= 1 keeps the rounded steps distinct
    return torch.linspace(1, max_steps, n_steps, device=device).round().long()


class RespacedModel(DiffusionModel):
    """A trained model seen through a respaced schedule of `n_steps` steps; pass it to Part 1's `sample`.

    Its `noise_schedule` has the respaced tables and its step i in {1, ..., S} calls the wrapped model at tau_i.
    """

    def __init__(self, model: DiffusionModel, n_steps: int):
        schedule = model.noise_schedule
        max_steps = len(schedule)
        taus = spaced_steps(max_steps, n_steps, schedule.betas.device)  # tau_1 = 1, ..., tau_S = T
        # in float64 on the CPU (Apple's MPS has no float64), then back on the schedule's device
        betas = betas_from_alpha_bars(schedule.alpha_bars[taus - 1].cpu().double()).float().to(taus.device)
        # The same kind of schedule as the model's, built from the respaced betas.
        super().__init__(model.config, type(schedule)(betas))
        self.model = model
        self.register_buffer("taus", taus)

    def forward(self, images: Tensor, num_steps: Tensor) -> Tensor:
        """eps_theta(x, tau_i) for respaced steps i, shape (B,), in {1, ..., S}."""
        return self.model(images, self.taus[num_steps - 1])


def respaced(model: DiffusionModel, n_steps: int | None) -> DiffusionModel:
    """`model` itself when `n_steps` is None or T, else a RespacedModel sampling in `n_steps` steps."""
    if n_steps is None or n_steps == len(model.noise_schedule):
        return model
    return RespacedModel(model, n_steps)


class GuidedModel(DiffusionModel):
    """`model` asked for the classes `labels` with guidance weight `w`, for a batch of exactly len(labels) images.

    Args:
        model: a trained class-conditional model, model(x_t, t, labels) -> eps.
        labels: the class of each image to draw, shape (B,), long.
        w: the guidance weight; 0 is the plain conditional model.
        guided_eps: Part 4's `guided_eps(model, x_t, t, labels, w)`, yours or the reference's.
    """

    def __init__(self, model: DiffusionModel, labels: Tensor, w: float, guided_eps: Callable):
        super().__init__(model.config, model.noise_schedule)
        self.model = model
        self.labels = labels.to(model.device)
        self.w = w
        self.guided_eps = guided_eps

    def forward(self, images: Tensor, num_steps: Tensor) -> Tensor:
        """The guided noise prediction for `images` (B, C, H, W) at steps `num_steps` (B,)."""
        if len(images) != len(self.labels):
            raise ValueError(f"this GuidedModel draws {len(self.labels)} images (one per label); got {len(images)}")
        return self.guided_eps(self.model, images, num_steps, self.labels, self.w)


class ClippedPrediction(DiffusionModel):
    """`model` with its predicted clean image clipped to [-1, 1]; any extra arguments (labels) are passed on."""

    # A wrapper, not a `clip` argument of the samplers: Part 1's `sample` and Part 4's `ddim_sample` are exercises
    # whose signatures the graders fix, and a model in their place clips for both without touching either.

    def __init__(self, model: DiffusionModel):
        super().__init__(model.config, model.noise_schedule)
        self.model = model

    def forward(self, images: Tensor, num_steps: Tensor, *args, **kwargs) -> Tensor:
        """The noise consistent with the clipped x0_hat, shape (B, C, H, W); `num_steps` integer steps (B,), or
        fractional ones (an ODE sampler's, Part 5)."""
        eps = self.model(images, num_steps, *args, **kwargs)
        if num_steps.is_floating_point():
            alpha_bar = fractional_alpha_bar(self.noise_schedule, num_steps).to(images.dtype)
        else:
            alpha_bar = self.noise_schedule.alpha_bar(num_steps)
        alpha_bar = per_image(alpha_bar, images)
        return eps_from_x0(images, x0_from_eps(images, eps, alpha_bar).clamp(-1, 1), alpha_bar)


def fractional_alpha_bar(schedule, t: Tensor) -> Tensor:
    """alpha_bar at fractional steps t in [1, T], shape (B,) -> (B,) float64: log sigma_t interpolated linearly
    between the integer steps, sigma_t = sqrt((1 - alpha_bar_t) / alpha_bar_t), the interpolation by which Part 5's
    `sigma_to_t` picks the fractional t of a noise level (this is its inverse). At integer t it is the table's value."""
    alpha_bars = schedule.alpha_bars.detach().cpu().double()  # float64 on the CPU: Apple's MPS has none
    log_sigmas = ((1 - alpha_bars) / alpha_bars).log() / 2
    t = t.detach().cpu().double()
    if t.numel() and not (1 <= t.min() and t.max() <= len(alpha_bars)):
        raise ValueError(f"steps run from 1 to T = {len(alpha_bars)}; got values from {t.min():.4g} to {t.max():.4g}")
    i = t.floor().long().clamp(1, len(alpha_bars) - 1)  # between steps i and i + 1, at indices i - 1 and i
    frac = t - i
    log_sigma = (1 - frac) * log_sigmas[i - 1] + frac * log_sigmas[i]
    return 1 / (1 + (2 * log_sigma).exp())


class ClippedVelocity(DiffusionModel):
    """A flow-matching model (Part 5) with its predicted clean image x_s - s v clipped to [-1, 1]."""

    needs_schedule = False  # a flow model has none

    def __init__(self, model: DiffusionModel):
        super().__init__(model.config, None)
        self.model = model

    def forward(self, images: Tensor, s: Tensor) -> Tensor:
        """The velocity that points to the clipped clean image from x_s: (x_s - clip(x0_hat)) / s, shape
        (B, C, H, W), for times s (B,) in (0, 1] (a sampler never asks at s = 0, the clean image itself)."""
        v = self.model(images, s)
        s = per_image(s, images)
        return (images - (images - s * v).clamp(-1, 1)) / s
