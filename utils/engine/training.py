"""The given training loop for long runs: DDPM Algorithm 1 around your own loss, plus what a real run needs.

Part 1 asks you for Algorithm 1 twice over: `diffusion_loss(model, x_0)` (lines 2-5 of the algorithm, one
minibatch's loss) and `train` (the plain loop around it). Parts 3 and 4 train for minutes or hours, which needs more
than the algorithm: a weight average, bf16 on a GPU, checkpoints to resume from, a wall-clock budget, fewer
host-device syncs, a progress bar, and the speed-ups of `utils.engine.speed` (fused twins of your blocks,
torch.compile, channels_last). `fit` is that loop. It is given code, and it calls *your* `diffusion_loss`, so a
model trained here learns exactly what your Algorithm 1 says.

    TrainConfig     what Algorithm 1 needs: epochs, learning rate, batch size, device, seed, logging
    FitConfig       what `fit` adds for long runs, all off by default
    fit             the loop

A class-conditional model (Part 4) trains in the same loop: give `fit` the labels too, and it calls
`loss_fn(model, x_0, y)` with each minibatch's labels.
"""

import contextlib
import time
from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm.auto import tqdm

from utils import get_device
from utils.engine.checkpoints import resume_training, save_checkpoint
from utils.engine.configs import FitConfig, TrainConfig
from utils.engine.data import check_images, minibatches, n_batches
from utils.engine.model import DiffusionModel
from utils.engine.run_log import RunLog
from utils.engine.speed import compile_model, fuse_blocks, tune_for

LossFn = Callable[[DiffusionModel, Tensor], Tensor]  # loss_fn(model, x_0); loss_fn(model, x_0, y) with labels


def bf16_autocast(device: torch.device, enabled: bool = True) -> contextlib.AbstractContextManager:
    """A context in which convolutions and matrix products run in bfloat16, on a CUDA GPU that supports it.

    bfloat16 keeps float32's exponent range, so unlike float16 it needs no loss scaling; autocast keeps the loss and
    the reductions in float32. Anywhere else (CPU, MPS, older GPUs such as the T4) this is a context that does nothing.
    """
    if enabled and device.type == "cuda" and torch.cuda.is_bf16_supported():
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
    device = model.schedule().betas.device
    total = 0.0
    for x_0 in minibatches(images.to(device), batch_size, shuffle=False):
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
) -> DiffusionModel:
    """Train `model` by Adam steps on `loss_fn(model, x_0)` over minibatches of `trainset`: Algorithm 1 for long runs.

    Args:
        model: a DiffusionModel built with its noise schedule; trained in place and moved to the training device.
        loss_fn: your Part 1 `diffusion_loss(model, x_0)`: a minibatch's scalar loss, with gradients.
        trainset: images (N, C, H, W) in [-1, 1], on any device; moved to the training device once.
        config: epochs, learning rate, batch size, device, seed and logging, as for Part 1's `train`.
        extras: EMA, a step-size cooldown, bf16, checkpoints, resume, a time budget, speed-ups (`FitConfig`).
        log: where the losses go; a new RunLog(config) if None.
        labels: class labels (N,), one per image of `trainset`, for a class-conditional model: then each step calls
            `loss_fn(model, x_0, y)` with the minibatch's labels y (Part 4's `conditional_loss`, say).
    Returns:
        The trained model; with an EMA, holding the averaged weights.
    """
    trainset = check_images(trainset, "trainset")
    own_log = log is None
    log = RunLog(config) if own_log else log
    # 1. seed, and the model, its schedule and the data on one device
    if config.seed is not None:
        torch.manual_seed(config.seed)
    device = get_device(config.device)
    model = model.to(device).train()
    trainset = trainset.to(device)
    tune_for(device)
    if extras.fused_blocks:
        print(fuse_blocks(model))
    if extras.channels_last:
        model = model.to(memory_format=torch.channels_last)
        trainset = trainset.contiguous(memory_format=torch.channels_last)
    if labels is not None:
        labels = labels.to(device=device, dtype=torch.long)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    ema = weight_average(model, extras.ema_decay) if extras.ema_decay is not None else None
    if extras.compile:
        print(compile_model(model, extras.compile, device))  # after the average's copy: it never runs forward
    # 2. continue a saved run: weights, optimizer, average, and where it stopped
    epoch, step = 0, 0
    if extras.resume_from:
        epoch, step = resume_training(extras.resume_from, model, optimizer, ema, log)
    start = time.monotonic()
    deadline = start + 60 * extras.minutes if extras.minutes is not None else None
    # A compiled step is compiled for one batch shape: a smaller last batch would compile it again.
    drop_last = extras.compile is not None and len(trainset) >= config.batch_size
    per_epoch = len(trainset) // config.batch_size if drop_last else n_batches(len(trainset), config.batch_size)

    def set_step_size() -> None:
        # By hand, not with a torch LR scheduler: a time budget's progress is measured in seconds, not steps, and
        # a resumed run picks up at its own step.
        if extras.lr_cooldown is None:
            return
        if deadline is not None:
            done = (time.monotonic() - start) / (deadline - start)
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
