"""The interface every denoising model in this course implements, and the configs Part 1 uses.

`DiffusionModel` is the contract between a network and the diffusion code around it: `train` and `sample` from
Part 1 only ever call `model(x_t, t)` and read `model.image_shape` and `model.noise_schedule`, so Part 2's U-Net
drops into the same functions as Part 1's tiny MLP.
"""

from abc import ABC, abstractmethod
from dataclasses import dataclass

from torch import Tensor, nn


class DiffusionModel(nn.Module, ABC):
    """A network eps_theta(x_t, t) that predicts the noise in x_t (the epsilon-prediction of DDPM eq. 11).

    Attributes:
        image_shape: (C, H, W) of the images it denoises.
        noise_schedule: the `NoiseSchedule` it was trained with; `train` attaches it, `sample` reads it. None before
            training. Kept on the model so that a saved model carries the schedule its predictions assume.
    """

    image_shape: tuple[int, int, int]
    noise_schedule: "nn.Module | None"

    @abstractmethod
    def forward(self, images: Tensor, num_steps: Tensor) -> Tensor:
        """Predict the noise in `images`.

        Args:
            images: noised images x_t, shape (B, C, H, W), float.
            num_steps: t for each image, shape (B,), integers in {1, ..., T}.
        Returns:
            The predicted noise eps_theta(x_t, t), shape (B, C, H, W).
        """


@dataclass(frozen=True)
class TinyDiffuserConfig:
    """Sizes of Part 1's MLP denoiser."""

    image_shape: tuple[int, int, int] = (3, 4, 5)  # (C, H, W) of the gradient images
    hidden_size: int = 128  # width of the one hidden layer
    max_steps: int = 100  # T, so the model can scale t to [0, 1]


@dataclass(frozen=True)
class TrainConfig:
    """How `train` runs. The defaults train Part 1's TinyDiffuser on gradients in well under a minute on a CPU."""

    epochs: int = 10  # passes over the training set
    lr: float = 1e-3  # Adam's step size
    batch_size: int = 128  # images per optimizer step
    max_steps: int = 100  # T, the number of noise steps (the paper uses 1000)
    device: str | None = None  # None picks CUDA, then MPS, then the CPU
    n_images_to_log: int = 8  # test images whose reconstructions are logged after each epoch
    seed: int | None = 0  # seeds torch before training, for runs you can repeat; None leaves the RNG alone
    wandb_project: str | None = None  # a Weights & Biases project to log to; None logs only in memory
    wandb_mode: str = "offline"  # "online" needs `wandb login` first; "offline" writes ./wandb for a later sync
    progress: bool = True  # show a tqdm progress bar
    # Extras for long runs (Part 3), all off by default; see utils/engine/training.py and utils/engine/checkpoints.py.
    mixed_precision: bool = False  # bf16 autocast on a CUDA GPU: faster convolutions, loss kept in float32
    ema_decay: float | None = None  # e.g. 0.999: keep an EMA of the weights and return the averaged model
    checkpoint_path: str | None = None  # save model, schedule, config and optimizer here after every epoch
    resume_from: str | None = None  # a checkpoint to continue from: its weights, optimizer state and epoch count
