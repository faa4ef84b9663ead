"""Training logs kept in memory for the notebook's plots, and mirrored to Weights & Biases only when asked.

wandb never prompts here: with no project set nothing is sent anywhere; "offline" writes a local run folder that
`wandb sync` can upload later; "online" first checks for credentials and fails with instructions if there are none.
"""

import math
from collections import defaultdict
from dataclasses import asdict, is_dataclass

from torch import Tensor


class WandbNotConfigured(RuntimeError):
    """Online wandb logging was asked for, but this machine has no wandb account set up."""


class RunLog:
    """Scalars and images of one training run.

    `history[name]` is a list of (step, value) pairs and `images` a list of (step, {name: tensor}) pairs, so the
    notebook can draw the loss curve and the reconstructions without any account anywhere.
    """

    def __init__(self, config=None, wandb_project: str | None = None, wandb_mode: str = "offline"):
        self.history: dict[str, list[tuple[int, float]]] = defaultdict(list)
        self.images: list[tuple[int, dict[str, Tensor]]] = []
        project = getattr(config, "wandb_project", wandb_project)
        mode = getattr(config, "wandb_mode", wandb_mode)
        self._wandb_run = _start_wandb(project, mode, config) if project else None

    def log(self, step: int, **scalars: float) -> None:
        """Record scalar values (a loss, a learning rate) at optimizer step `step`.

        A loss (any name containing "loss") that is NaN or infinite stops the run here with a FloatingPointError
        naming the step: every later step would only spread the NaN through the weights.
        """
        for name, value in scalars.items():
            value = float(value)
            if "loss" in name and not math.isfinite(value):
                raise FloatingPointError(
                    f"{name} became {value} at step {step}: training diverged. Try a smaller learning rate "
                    "(TrainConfig.lr), and check that the images are in [-1, 1]."
                )
            self.history[name].append((step, value))
        if self._wandb_run is not None:
            self._wandb_run.log({name: float(value) for name, value in scalars.items()}, step=step)

    def log_images(self, step: int, **images: Tensor) -> None:
        """Record batches of images in [-1, 1], each (N, C, H, W), e.g. originals, noised and reconstructed."""
        kept = {name: img.detach().float().cpu() for name, img in images.items()}
        self.images.append((step, kept))
        if self._wandb_run is not None:
            import wandb

            from utils.engine.pixels import denormalize_img

            self._wandb_run.log(
                {
                    name: [wandb.Image(denormalize_img(im).permute(1, 2, 0).numpy()) for im in img]
                    for name, img in kept.items()
                },
                step=step,
            )

    def last(self, name: str) -> float:
        """The most recent value logged under `name` (NaN if none)."""
        return self.history[name][-1][1] if self.history.get(name) else math.nan

    def finish(self) -> None:
        """Close the wandb run, if there is one."""
        if self._wandb_run is not None:
            self._wandb_run.finish()
            self._wandb_run = None


def _start_wandb(project: str, mode: str, config):
    import wandb

    if mode not in ("online", "offline", "disabled"):
        raise ValueError(f'wandb_mode must be "online", "offline" or "disabled"; got {mode!r}')
    if mode == "online" and not wandb.login(prompt=False):
        raise WandbNotConfigured(
            "wandb_mode='online' needs a Weights & Biases account on this machine, and none is set up.\n"
            "Either run `wandb login` (or set WANDB_API_KEY) and try again, or use wandb_mode='offline' "
            "(logs to ./wandb, upload later with `wandb sync`), or leave wandb_project=None (plots in the notebook only)."
        )
    settings = asdict(config) if is_dataclass(config) else {}
    return wandb.init(project=project, mode=mode, config=settings)
