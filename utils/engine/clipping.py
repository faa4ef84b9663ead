"""Keep a model's predicted clean image inside the data range while sampling, by correcting its noise prediction.

Every sampler of the course steps through x0_hat = (x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t), explicitly
(DDIM) or implicitly (DDPM's mean, eq. 11). Where alpha_bar_t is tiny, as at t = T of the cosine schedule
(alpha_bar_T ~ 2e-9), the model's small errors in eps are divided by sqrt(alpha_bar_t) ~ 5e-5: x0_hat lands far
outside [-1, 1], and the next step carries that blow-up into every later one. Improved DDPM (Nichol and Dhariwal 2021,
their code's `clip_denoised`) and diffusers' schedulers (`clip_sample`) clip x0_hat to [-1, 1]. `ClippedPrediction`
does the same for any sampler, without changing it: it answers with the noise that points to the clipped x0_hat,

    eps' = (x_t - sqrt(alpha_bar_t) clip(x0_hat, -1, 1)) / sqrt(1 - alpha_bar_t),

so that DDIM's step and DDPM's mean both see the clipped clean image.
"""

from torch import Tensor

from utils.engine.model import DiffusionModel
from utils.engine.tensors import per_image


class ClippedPrediction(DiffusionModel):
    """`model` with its predicted clean image clipped to [-1, 1]; any extra arguments (labels) are passed on."""

    def __init__(self, model: DiffusionModel):
        super().__init__(model.config, model.schedule())
        self.model = model

    def forward(self, images: Tensor, num_steps: Tensor, *args, **kwargs) -> Tensor:
        """The noise consistent with the clipped x0_hat, shape (B, C, H, W)."""
        eps = self.model(images, num_steps, *args, **kwargs)
        alpha_bar = per_image(self.noise_schedule.alpha_bar(num_steps), images)
        x0_hat = ((images - (1 - alpha_bar).sqrt() * eps) / alpha_bar.sqrt()).clamp(-1, 1)
        return (images - alpha_bar.sqrt() * x0_hat) / (1 - alpha_bar).sqrt()
