"""A class-conditional model with classifier-free guidance, seen as a plain DiffusionModel eps(x_t, t).

Every sampler of the course (Part 1's `sample`, Part 4's `ddim_sample`) calls `model(x_t, t)` and nothing else. To
sample class y with guidance weight w, wrap the conditional model: `GuidedModel(model, labels, w, guided_eps)`
answers `model(x_t, t)` with your `guided_eps(model, x_t, t, labels, w)` (Ho and Salimans 2022, eq. 6).
"""

from collections.abc import Callable

from torch import Tensor

from utils.engine.model import DiffusionModel


class GuidedModel(DiffusionModel):
    """`model` asked for the classes `labels` with guidance weight `w`, for a batch of exactly len(labels) images.

    Args:
        model: a trained class-conditional model, model(x_t, t, labels) -> eps.
        labels: the class of each image to draw, shape (B,), long.
        w: the guidance weight; 0 is the plain conditional model.
        guided_eps: Part 4's `guided_eps(model, x_t, t, labels, w)`, yours or the reference's.
    """

    def __init__(self, model: DiffusionModel, labels: Tensor, w: float, guided_eps: Callable):
        super().__init__(model.config, model.schedule())
        self.model = model
        self.labels = labels.to(model.schedule().betas.device)
        self.w = w
        self.guided_eps = guided_eps

    def forward(self, images: Tensor, num_steps: Tensor) -> Tensor:
        """The guided noise prediction for `images` (B, C, H, W) at steps `num_steps` (B,)."""
        if len(images) != len(self.labels):
            raise ValueError(f"this GuidedModel draws {len(self.labels)} images (one per label); got {len(images)}")
        return self.guided_eps(self.model, images, num_steps, self.labels, self.w)
