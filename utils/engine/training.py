"""Given extras for long training runs on a GPU: bf16 mixed precision and an exponential moving average of the weights.

Both are off by default (`TrainConfig.mixed_precision`, `TrainConfig.ema_decay`), so Part 1's small runs behave exactly
as the plain DDPM Algorithm 1; Part 3 turns them on for its FashionMNIST runs on CUDA.
"""

import contextlib

import torch
from torch import nn


def bf16_autocast(device: torch.device, enabled: bool = True) -> contextlib.AbstractContextManager:
    """A context in which convolutions and matrix products run in bfloat16, on a CUDA GPU that supports it.

    bfloat16 keeps float32's exponent range, so unlike float16 it needs no loss scaling; autocast keeps the loss and
    the reductions in float32. Anywhere else (CPU, MPS, older GPUs such as the T4) this is a context that does nothing.
    """
    if enabled and device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


class EMA:
    """An exponential moving average of a model's parameters, w_ema <- decay * w_ema + (1 - decay) * w.

    The weights after the last optimizer step jitter with the last few minibatches; their running average samples
    smoother images (DDPM trains with an EMA of decay 0.9999, appendix B). Early on the effective decay is lowered to
    (1 + n) / (10 + n) after n updates, so that a short run is not dominated by its random initial weights.
    """

    def __init__(self, model: nn.Module, decay: float = 0.999):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"the EMA decay must lie in (0, 1); got {decay}")
        self.decay = decay
        self.n_updates = 0
        self.shadow = {name: p.detach().clone() for name, p in model.named_parameters()}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Move the average towards the model's current parameters; call after every optimizer step."""
        self.n_updates += 1
        decay = min(self.decay, (1 + self.n_updates) / (10 + self.n_updates))
        for name, p in model.named_parameters():
            self.shadow[name].lerp_(p.detach(), 1 - decay)

    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> None:
        """Overwrite the model's parameters with the averaged ones."""
        for name, p in model.named_parameters():
            p.copy_(self.shadow[name])

    def state_dict(self) -> dict:
        return {"decay": self.decay, "n_updates": self.n_updates, "shadow": dict(self.shadow)}

    def load_state_dict(self, state: dict) -> None:
        self.decay = state["decay"]
        self.n_updates = state["n_updates"]
        for name, value in state["shadow"].items():
            self.shadow[name].copy_(value)
