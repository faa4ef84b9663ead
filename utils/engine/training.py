"""The given training loop for long runs: DDPM Algorithm 1 around your own loss, plus what a real run needs.

Part 1 asks you for Algorithm 1 twice over: `diffusion_loss(model, x_0)` (lines 2-5 of the algorithm, one
minibatch's loss) and `train` (the plain loop around it). Parts 3 and 4 train for minutes or hours, which needs more
than the algorithm: a weight average, bf16 on a GPU, checkpoints to resume from, a wall-clock budget, fewer
host-device syncs and a progress bar. `fit` is that loop. It is given code, and it calls *your* `diffusion_loss`, so a
model trained here learns exactly what your Algorithm 1 says.

    TrainConfig     what Algorithm 1 needs: epochs, learning rate, batch size, device, seed, logging
    FitConfig       what `fit` adds for long runs, all off by default
    fit             the loop

A class-conditional model (Part 4) trains in the same loop: give `fit` the labels too, and it calls
`loss_fn(model, x_0, y)` with each minibatch's labels.

    minibatches     batches drawn from a tensor already on the training device (a DataLoader indexes one image at
                    a time in Python; one permutation on the device and slicing are many times faster)
    RunLog          the losses and images of a run, kept in memory for the notebooks' plots and mirrored to Weights &
                    Biases only when asked: wandb never prompts ("offline" writes ./wandb for a later `wandb sync`)
    fit             the loop; its speed-ups (fused twins, torch.compile, channels_last) come in through its
                    `prepare` hook (`ddpm_course.speed`), so the loop itself stays the algorithm and its bookkeeping
"""

import contextlib
import math
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, is_dataclass

import torch
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm.auto import tqdm

from utils import get_device
from utils.engine.model import DiffusionModel, denormalize_img


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
    drop_last: bool = False  # every batch exactly batch_size images: a compiled step then never meets a new shape


def check_images(images, name: str = "trainset") -> Tensor:
    """`images` must be a float tensor of shape (N, C, H, W); say clearly what came instead."""
    if not isinstance(images, Tensor):
        raise TypeError(f"{name} must be a tensor of images of shape (N, C, H, W); got {type(images).__name__}")
    if images.ndim != 4:
        raise ValueError(f"{name} must have shape (N, C, H, W); got shape {tuple(images.shape)}")
    if not images.is_floating_point():
        raise TypeError(f"{name} must hold floats in [-1, 1]; got {images.dtype} (did you forget normalize_img?)")
    if len(images) == 0:
        raise ValueError(f"{name} is empty")
    return images


def minibatches(
    images: Tensor,
    batch_size: int,
    shuffle: bool = True,
    labels: Tensor | None = None,
    drop_last: bool = False,
) -> Iterator[Tensor] | Iterator[tuple[Tensor, Tensor]]:
    """Yield batches of at most `batch_size` images, covering `images` (N, C, H, W) once, on its own device.

    With `labels` (N,), yield (images, labels) pairs instead, each label staying with its image. With `drop_last`,
    every batch has exactly `batch_size` images and the N mod batch_size left over are skipped (others, next time,
    when shuffled): a compiled step then never sees a new shape, which would make it compile again.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1; got {batch_size}")
    if labels is not None and labels.shape != (len(images),):
        raise ValueError(f"labels must have shape ({len(images)},), one per image; got {tuple(labels.shape)}")
    order = (
        torch.randperm(len(images), device=images.device)
        if shuffle
        else torch.arange(len(images), device=images.device)
    )
    end = len(images) - len(images) % batch_size if drop_last else len(images)
    for start in range(0, end, batch_size):
        batch = order[start : start + batch_size]
        yield images[batch] if labels is None else (images[batch], labels[batch])


def n_batches(n_images: int, batch_size: int) -> int:
    """How many batches `minibatches` yields for `n_images` images."""
    return -(-n_images // batch_size)


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


LossFn = Callable[[DiffusionModel, Tensor], Tensor]  # loss_fn(model, x_0); loss_fn(model, x_0, y) with labels
# prepare(model, trainset) -> (model, trainset): both on the training device, before the optimizer and the average see
# the model; how a speed-up (`ddpm_course.speed.SpeedConfig.prepare`) swaps blocks or changes the memory layout.
Prepare = Callable[[DiffusionModel, Tensor], tuple[DiffusionModel, Tensor]]


def bf16_autocast(device: torch.device, enabled: bool = True) -> contextlib.AbstractContextManager:
    """A context in which convolutions and matrix products run in bfloat16, on a CUDA GPU that supports it.

    bfloat16 keeps float32's exponent range, so unlike float16 it needs no loss scaling; autocast keeps the loss and
    the reductions in float32. Anywhere else (CPU, MPS, older GPUs such as the T4) this is a context that does nothing.
    """
    if enabled and device.type == "cuda" and torch.cuda.is_bf16_supported(including_emulation=False):
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def cooldown_factor(progress: float, cooldown: float) -> float:
    """The factor on the step size when a fraction `progress` of the run is done: 1, then falling linearly to 0 over
    the last `cooldown` of the run (a "warmup-stable-decay" schedule without the warmup).

    Both ways of quieting the last steps' jitter average many noisy steps: the weight average keeps the steps and
    averages their weights, the cooldown makes the steps themselves small. Averaging the weights of a network that is
    still moving shrinks what it outputs (Part 1 measures it: washed-out colors); a cooldown does not.
    """
    if not 0.0 < cooldown <= 1.0:
        raise ValueError(f"the cooldown is a fraction of the run, in (0, 1]; got {cooldown}")
    return max(0.0, min(1.0, (1.0 - progress) / cooldown))


def weight_average(model: nn.Module, decay: float) -> AveragedModel:
    """An exponential moving average of `model`'s parameters, w_avg <- decay * w_avg + (1 - decay) * w.

    The weights after the last optimizer step jitter with the last few minibatches; their running average samples
    smoother images (DDPM keeps one with decay 0.9999, appendix B). Call `.update_parameters(model)` after each step.
    """
    if not 0.0 < decay < 1.0:
        raise ValueError(f"the EMA decay must lie in (0, 1); got {decay}")
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay))


@torch.no_grad()
def copy_parameters(source: nn.Module, target: nn.Module) -> None:
    """Overwrite `target`'s parameters with `source`'s (same architecture), e.g. the averaged weights after training."""
    for p_target, p_source in zip(target.parameters(), source.parameters(), strict=True):
        p_target.copy_(p_source)


@torch.no_grad()
def mean_loss(model: DiffusionModel, loss_fn: LossFn, images: Tensor, batch_size: int) -> float:
    """`loss_fn(model, x_0)` averaged over `images` (N, C, H, W), a batch at a time, without gradients."""
    total = 0.0
    for x_0 in minibatches(images.to(model.device), batch_size, shuffle=False):
        total += loss_fn(model, x_0).item() * len(x_0)
    return total / len(images)


def fit(
    model: DiffusionModel,
    loss_fn: LossFn,
    trainset: Tensor,
    config: TrainConfig = TrainConfig(),
    extras: FitConfig = FitConfig(),
    log: RunLog | None = None,
    labels: Tensor | None = None,
    prepare: Prepare | None = None,
) -> DiffusionModel:
    """Train `model` by Adam steps on `loss_fn(model, x_0)` over minibatches of `trainset`: Algorithm 1 for long runs.

    Args:
        model: a DiffusionModel built with its noise schedule; trained in place and moved to the training device.
        loss_fn: your Part 1 `diffusion_loss(model, x_0)`: a minibatch's scalar loss, with gradients.
        trainset: images (N, C, H, W) in [-1, 1], on any device; moved to the training device once.
        config: epochs, learning rate, batch size, device, seed and logging, as for Part 1's `train`.
        extras: EMA, a step-size cooldown, bf16, checkpoints, resume, a time budget (`FitConfig`).
        log: where the losses go; a new RunLog(config) if None.
        labels: class labels (N,), one per image of `trainset`, for a class-conditional model: then each step calls
            `loss_fn(model, x_0, y)` with the minibatch's labels y (Part 4's `conditional_loss`, say).
        prepare: called once with the model and the images on the training device, before training starts; returns
            the pair to train with (see `Prepare`).
    Returns:
        The trained model; with an EMA, holding the averaged weights.
    """
    from utils.engine.checkpoints import resume_training, save_checkpoint  # they build on the configs above

    trainset = check_images(trainset, "trainset")
    own_log = log is None
    log = RunLog(config) if own_log else log
    # 1. seed, and the model, its schedule and the data on one device
    if config.seed is not None:
        torch.manual_seed(config.seed)
    device = get_device(config.device)
    model = model.to(device).train()
    trainset = trainset.to(model.device)
    if prepare is not None:
        model, trainset = prepare(model, trainset)
    if labels is not None:
        labels = labels.to(device=device, dtype=torch.long)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    ema = weight_average(model, extras.ema_decay) if extras.ema_decay is not None else None
    # 2. continue a saved run: weights, optimizer, average, and where it stopped
    epoch, step = 0, 0
    if extras.resume_from:
        epoch, step = resume_training(extras.resume_from, model, optimizer, ema, log)
    start = time.monotonic()
    deadline = start + 60 * extras.minutes if extras.minutes is not None else None
    drop_last = extras.drop_last and len(trainset) >= config.batch_size
    per_epoch = len(trainset) // config.batch_size if drop_last else n_batches(len(trainset), config.batch_size)

    def set_step_size() -> None:
        # By hand, not with a torch LR scheduler: a time budget's progress is measured in seconds, not steps, and
        # a resumed run picks up at its own step.
        if extras.lr_cooldown is None:
            return
        if deadline is not None:
            done = (time.monotonic() - start) / max(deadline - start, 1e-9)  # a budget of 0 is all done
        else:
            done = step / (config.epochs * per_epoch)
        for group in optimizer.param_groups:
            group["lr"] = config.lr * cooldown_factor(done, extras.lr_cooldown)

    progress = tqdm(
        total=None if deadline else config.epochs * per_epoch, initial=step, disable=not extras.progress, unit="step"
    )
    pending: list[Tensor] = []  # losses still on the device: reading each one would stall a GPU every step

    def read_losses() -> None:
        # RunLog.log raises FloatingPointError on a NaN or infinite loss, naming the step.
        for i, value in enumerate(torch.stack(pending).float().cpu().tolist()):
            log.log(step - len(pending) + i + 1, loss=value)
        progress.set_postfix(epoch=epoch + 1, loss=f"{log.last('loss'):.4f}", refresh=False)
        pending.clear()

    out_of_time = False
    while not out_of_time and (deadline is not None or epoch < config.epochs):
        for batch in minibatches(trainset, config.batch_size, shuffle=True, labels=labels, drop_last=drop_last):
            # 3. Algorithm 1, lines 2-5: your loss, in bf16 on a GPU if asked
            set_step_size()
            with bf16_autocast(device, extras.mixed_precision):
                loss = loss_fn(model, batch) if labels is None else loss_fn(model, *batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if ema is not None:
                ema.update_parameters(model)
            step += 1
            pending.append(loss.detach())
            progress.update()
            if len(pending) >= extras.log_every:
                read_losses()
            if deadline is not None and time.monotonic() > deadline:
                out_of_time = True
                break
        epoch += 1  # a budget cut short counts as an epoch too: a resumed run starts a fresh one
        if pending:
            read_losses()
        # 4. a checkpoint after every epoch, so a stopped run loses at most one
        if extras.checkpoint_path is not None:
            save_checkpoint(
                extras.checkpoint_path, model, config, optimizer=optimizer, ema=ema, epoch=epoch, step=step, log=log
            )
    progress.close()
    if ema is not None:
        copy_parameters(ema.module, model)  # sample with the averaged weights
    if own_log:
        log.finish()
    return model
