"""A student's Part 1, written the simple way: correct, and nothing like the reference line by line.

tests/test_own_code.py runs Part 3's pipeline with it, to prove that a student's own code carries them to the end.
"""

import torch
from torch import nn

from utils.engine.model import DiffusionModel


def linear_schedule(max_steps, min_noise=1e-4, max_noise=0.02):
    step = (max_noise - min_noise) / (max_steps - 1)
    return torch.tensor([min_noise + i * step for i in range(max_steps)], dtype=torch.float32)


class NoiseSchedule(nn.Module):
    def __init__(self, betas):
        super().__init__()
        self.register_buffer("betas", betas)
        self.register_buffer("alphas", 1 - betas)
        self.register_buffer("alpha_bars", torch.cumprod(1 - betas, 0))

    def beta(self, t):
        return self.betas[torch.as_tensor(t, device=self.betas.device) - 1]

    def alpha(self, t):
        return self.alphas[torch.as_tensor(t, device=self.betas.device) - 1]

    def alpha_bar(self, t):
        return self.alpha_bars[torch.as_tensor(t, device=self.betas.device) - 1]

    def __len__(self):
        return len(self.betas)


def diffusion_loss(model: DiffusionModel, x_0):
    schedule = model.noise_schedule
    t = torch.randint(1, len(schedule) + 1, (x_0.shape[0],), device=x_0.device)
    eps = torch.randn_like(x_0)
    a = schedule.alpha_bar(t).view(-1, 1, 1, 1)
    x_t = a.sqrt() * x_0 + (1 - a).sqrt() * eps
    return ((model(x_t, t) - eps) ** 2).mean()


@torch.no_grad()
def sample(model, n_samples, return_all_steps=False):
    s = model.noise_schedule
    device = s.betas.device
    x = torch.randn(n_samples, *model.image_shape, device=device)
    xs = [x]
    for t in range(len(s), 0, -1):
        eps = model(x, torch.full((n_samples,), t, device=device))
        x = (x - s.beta(t) / (1 - s.alpha_bar(t)).sqrt() * eps) / s.alpha(t).sqrt()
        if t > 1:
            x = x + s.beta(t).sqrt() * torch.randn_like(x)
        xs.append(x)
    return torch.stack(xs) if return_all_steps else x
