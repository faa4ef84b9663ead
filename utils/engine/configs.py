"""The configs of a training run, one frozen dataclass for each layer of it.

    TrainConfig     what Algorithm 1 needs: read by your Part 1 `train` and by the given `fit`
    FitConfig       what the given `fit` adds for long runs (Part 3 on), all off by default

A model's own config (its sizes) lives beside the model: `TinyDiffuserConfig` in Part 1, `UnetConfig` in Part 2.
T, the number of noise steps, is in neither: it is the length of the model's noise schedule.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class TrainConfig:
    """How Algorithm 1 runs; read by Part 1's `train` and by `fit`. The defaults suit Part 1's MLP on a CPU."""

    epochs: int = 10  # passes over the training set
    lr: float = 1e-3  # Adam's step size
    batch_size: int = 128  # images per optimizer step
    device: str | None = None  # None picks CUDA, then MPS, then the CPU
    seed: int | None = 0  # seeds torch before training, for runs you can repeat; None leaves the RNG alone
    n_images_to_log: int = 8  # test images whose reconstructions are logged after each epoch
    wandb_project: str | None = None  # a Weights & Biases project to log to; None logs only in memory
    wandb_mode: str = "offline"  # "online" needs `wandb login` first; "offline" writes ./wandb for a later sync


@dataclass(frozen=True)
class FitConfig:
    """What the given `fit` adds around Algorithm 1 for long runs (Part 3 on): all off by default."""

    mixed_precision: bool = False  # bf16 autocast on a CUDA GPU: faster convolutions, loss kept in float32
    ema_decay: float | None = None  # e.g. 0.999: keep an average of the weights and return the averaged model
    lr_cooldown: float | None = None  # e.g. 0.3: over the last 30% of the run the step size falls linearly to 0
    checkpoint_path: str | None = None  # save model, schedule, configs and optimizer here after every epoch
    resume_from: str | None = None  # a checkpoint to continue from: its weights, optimizer, average and step count
    minutes: float | None = None  # train for this wall-clock budget instead of TrainConfig.epochs
    log_every: int = 10  # read the loss back from the device every this many steps: each read waits for the GPU
    progress: bool = True  # show a progress bar
    # Speed without changing the function (utils.engine.speed); each pays on a GPU, where kernel launches dominate.
    fused_blocks: bool = False  # swap hand-written GroupNorm, attention, residual blocks for proven-equal fused twins
    compile: str | None = None  # a torch.compile mode ("default"; "reduce-overhead" adds CUDA graphs); None: eager
    channels_last: bool = False  # images and convolution weights stored (B, H, W, C), the layout tensor cores prefer
