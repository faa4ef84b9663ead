"""The interface every denoising model in this course implements.

`DiffusionModel` is the contract between a network and the diffusion code around it: Part 1's `diffusion_loss`,
`train` and `sample`, and the given `fit` loop, only ever call `model(x_t, t)` and read `model.image_shape` and
`model.noise_schedule`, so Part 2's U-Net drops into the same functions as Part 1's tiny MLP.

One convention for every model of the course: `Model(config, noise_schedule)`. The config is a frozen dataclass that
lives beside its model (`TinyDiffuserConfig` in Part 1, `UnetConfig` in Part 2) and holds the network's sizes, among
them `image_shape`; the noise schedule holds the betas, and so T, the number of noise steps. T lives there and nowhere
else: a network that needs T (to scale t, say) reads `len(self.noise_schedule)`.
"""

from abc import ABC, abstractmethod

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

    def schedule(self) -> nn.Module:
        """`self.noise_schedule`, or an error that says how to give the model one."""
        if self.noise_schedule is None:
            raise ValueError(
                f"this {type(self).__name__} has no noise schedule: build it with one, e.g. "
                f"{type(self).__name__}(config, NoiseSchedule(linear_schedule(T)))"
            )
        return self.noise_schedule


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
