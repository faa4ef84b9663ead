"""Sample a trained DDPM in fewer steps than it was trained with, by respacing its schedule.

Nichol and Dhariwal, "Improved Denoising Diffusion Probabilistic Models" (ICML 2021), section 4: a model trained with
T steps can sample along any increasing subsequence tau_1 < ... < tau_S = T of its time steps. The forward process
restricted to that subsequence is again a diffusion, with

    alpha_bar'_i = alpha_bar_{tau_i},   beta'_i = 1 - alpha_bar'_i / alpha_bar'_{i-1}   (alpha_bar'_0 = 1),

so Part 1's unchanged `sample` (Algorithm 2) runs on it in S steps, asking the model about time tau_i at step i.
Samples get a little noisier as S shrinks; a few hundred steps are close to the full 1000, and a few dozen still
show clothes, which is what a CPU (or CI) can afford.
"""

import torch
from torch import Tensor

from utils.engine.model import DiffusionModel


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
        schedule = model.schedule()
        max_steps = len(schedule)
        taus = spaced_steps(max_steps, n_steps, schedule.betas.device)  # tau_1 = 1, ..., tau_S = T
        alpha_bars = schedule.alpha_bars[taus - 1].double()
        previous = torch.cat([alpha_bars.new_ones(1), alpha_bars[:-1]])
        # The same kind of schedule as the model's, built from the respaced betas.
        super().__init__(model.config, type(schedule)((1 - alpha_bars / previous).float()))
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
