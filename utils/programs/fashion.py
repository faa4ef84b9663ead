"""The Part 3 run in one command: FashionMNIST -> trained U-Net -> samples, figures and FMNIST-FID.

    ddpm-course reference part3                      # CUDA: 5 minutes of training; CPU: a smaller run, about 10
    ddpm-course reference part3 --quick              # a smoke run in about a minute on a CPU (tiny data and model)
    ddpm-course reference part3 --epochs 30 --out runs/long
    ddpm-course reference part3 --minutes 10         # train for a wall-clock budget instead of whole epochs
    ddpm-course reference part3 --resume runs/part3/checkpoint.pt --epochs 40
    ddpm-course reference part3 --checkpoint utils/weights/unet_fmnist_cpu.pt   # no training: sample and score
    ddpm-course run part3                            # the same run with YOUR Parts 1, 2 and 3 (exercises/)
    ddpm-course run part3 --impl part1=part1_gradients.ipynb   # your notebook's Part 1, the reference Parts 2, 3

Whose algorithm runs is a parameter, never an import: `Implementation` gathers the names the run needs from a Part 1,
a Part 2 and a Part 3, each from wherever --impl says (utils.impl: the reference, exercises/, a folder, a file or a
notebook). The given
machinery around them is the same for everyone: `utils.engine.training.fit` calls your `diffusion_loss`, checkpoints
save and resume, the weight average and bf16 apply, and your `sample` and scores make the figures.

It writes into --out: checkpoint.pt, samples.png (generated beside real), denoising.png and denoising.gif, loss.png,
scores.png and metrics.json. FMNIST-FID and FMNIST-KID are always printed with their spread, beside the real-data
floor measured against the same reference at the same N (`utils.datasets.scoring`).
"""

import argparse
import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import torch
from torch import Tensor

from utils import get_device
from utils.datasets.classifier import WEIGHTS_PATH as CLASSIFIER_WEIGHTS
from utils.datasets.classifier import load_classifier
from utils.datasets.fashion_mnist import load_fashion_mnist
from utils.datasets.scoring import PROTOCOL_NOTE, Metrics, Scoring, describe
from utils.engine.checkpoints import export_for_sampling, load_checkpoint
from utils.engine.configs import FitConfig, TrainConfig
from utils.engine.model import DiffusionModel
from utils.engine.respacing import respaced
from utils.engine.run_log import RunLog
from utils.engine.speed import fuse_blocks
from utils.engine.training import bf16_autocast, fit
from utils.figures.animation import denoising_gif
from utils.figures.part3 import plot_score_vs_floor, show_samples_and_real
from utils.figures.plotting import plot_denoising, plot_losses
from utils.impl import gather, load_parts

SHIPPED_CHECKPOINT = Path(__file__).resolve().parents[1] / "weights" / "unet_fmnist_cpu.pt"
# How SHIPPED_CHECKPOINT was made, on a 2-core CPU: 3,476 steps of batch 64 in 20 minutes (about 3.7 epochs).
SHIPPED_COMMAND = (
    "ddpm-course reference part3 --device cpu --threads 2 --minutes 20 --n-train 60000 "
    "--out runs/shipped --export utils/weights/unet_fmnist_cpu.pt"
)


FIGURES_NOTE = (
    "samples.png: generated images beside real ones; denoising.png and .gif: Algorithm 2 from noise to image; "
    "loss.png: the training loss by step; scores.png: FMNIST-FID beside the floor two real sets score at the same N "
    "(the nearer, the better); metrics.json: every number above"
)


@dataclass(frozen=True)
class Implementation:
    """The student's algorithm a run uses: Parts 1, 2 and 3, yours or the reference's.

    Built from three modules with `Implementation.of(part1, part2, part3)`, or from a spec with `load`.
    """

    NoiseSchedule: type  # Part 1
    linear_schedule: Callable
    diffusion_loss: Callable
    sample: Callable
    Unet: type  # Part 2
    UnetConfig: type
    feature_statistics: Callable  # Part 3
    frechet_distance: Callable
    kernel_inception_distance: Callable
    fmnist_score: Callable

    PARTS = {
        "NoiseSchedule": 1,
        "linear_schedule": 1,
        "diffusion_loss": 1,
        "sample": 1,
        "Unet": 2,
        "UnetConfig": 2,
        "feature_statistics": 3,
        "frechet_distance": 3,
        "kernel_inception_distance": 3,
        "fmnist_score": 3,
    }

    @classmethod
    def of(cls, part1, part2, part3) -> "Implementation":
        """The names a run needs, taken from three modules (or any objects that have them)."""
        sources = {1: part1, 2: part2, 3: part3}
        return gather(cls, {name: sources[part] for name, part in cls.PARTS.items()})

    @classmethod
    def load(cls, values: str | list[str] | None, default: str = "solutions", show=print) -> "Implementation":
        """The parts `values` name (--impl values: see utils.impl), each checked for what the run needs; `show`
        is told first which file each part comes from."""
        needs = {part: [n for n, p in cls.PARTS.items() if p == part] for part in (1, 2, 3)}
        return cls.of(*load_parts(values, needs, default, show).values())


@dataclass(frozen=True)
class FashionRun:
    """Everything a Part 3 run needs besides the data and the implementation. `default_run` picks one for the device."""

    unet: object  # the U-Net's sizes: an instance of Part 2's UnetConfig
    max_steps: int = 1000  # T of the linear schedule the U-Net is built with (the paper's)
    train: TrainConfig = TrainConfig()  # Algorithm 1's settings: epochs, lr, batch size, device
    fit: FitConfig = FitConfig()  # the long-run extras: EMA, bf16, checkpoints, a time budget
    n_train: int | None = None  # use only the first n training images (None: all 60,000)
    sampling_steps: int | None = None  # sample in this many respaced steps (None: all T steps, as in the paper)
    n_eval: int = 2048  # samples scored by FMNIST-FID and KID, beside the floor at the same N
    sample_batch: int = 512  # images sampled at once (memory)


def default_run(device: torch.device, unet_config: type, quick: bool = False) -> FashionRun:
    """The run that suits `device`: the full recipe on CUDA, a smaller one elsewhere, a one-minute one with `quick`.

    `unet_config` is Part 2's UnetConfig class (yours or the reference's); the run's U-Net sizes are one of it.
    """
    if quick:
        return FashionRun(
            unet=unet_config(channels=8, dim_mults=(1, 2), attention_levels=()),
            train=TrainConfig(epochs=1, lr=1e-3, batch_size=64, device=str(device)),
            fit=FitConfig(progress=False),
            n_train=512,
            sampling_steps=10,
            n_eval=64,
            sample_batch=64,
        )
    if device.type == "cuda":
        # Data on the GPU, bf16 convolutions, fused blocks and an EMA of the weights, for a fixed five minutes (the
        # epochs count only where `minutes` is cleared): the same wait on any GPU, more steps on a faster one.
        return FashionRun(
            unet=unet_config(),
            train=TrainConfig(epochs=20, lr=1e-3, batch_size=128, device=str(device)),
            fit=FitConfig(mixed_precision=True, ema_decay=0.999, fused_blocks=True, minutes=5.0),
            n_eval=2048,
            sample_batch=1024,
        )
    # A CPU (or Apple GPU): a narrower U-Net than Part 2's default (16 channels, attention only at 7x7), one pass
    # over 10,000 images, and 250 respaced sampling steps. The shipped checkpoint is this model and recipe trained for
    # 20 minutes on all 60,000 images: see SHIPPED_COMMAND.
    return FashionRun(
        unet=unet_config(channels=16, attention_levels=(2,)),
        train=TrainConfig(epochs=1, lr=1e-3, batch_size=64, device=str(device)),
        fit=FitConfig(ema_decay=0.999, lr_cooldown=0.3),
        n_train=10_000,
        sampling_steps=250,
        n_eval=256,
        sample_batch=256,
    )


def make_unet(run: FashionRun, impl: Implementation) -> DiffusionModel:
    """The implementation's U-Net with the run's sizes, built with a linear schedule of T = run.max_steps."""
    return impl.Unet(run.unet, impl.NoiseSchedule(impl.linear_schedule(run.max_steps)))


@torch.no_grad()
def sample_many(
    model: DiffusionModel,
    sample: Callable,
    n: int,
    batch_size: int,
    steps: int | None = None,
    mixed_precision: bool = False,
) -> Tensor:
    """n samples from `model` by `sample` (Algorithm 2, in `steps` respaced steps if given), `batch_size` at a time,
    gathered on the CPU. With `mixed_precision` the network runs in bf16 on a CUDA GPU."""
    sampler = respaced(model, steps)
    device = model.schedule().betas.device
    with bf16_autocast(device, mixed_precision):
        return torch.cat([sample(sampler, min(batch_size, n - done)).float().cpu() for done in range(0, n, batch_size)])


def evaluate(samples: Tensor, real: Tensor, impl: Implementation, classifier=None) -> dict[str, float]:
    """The scores of `samples` under the course's protocol (`Scoring`: FMNIST-FID and KID against the first N `real`
    test images, with their spreads and the floor of held-out real images at the same N), the FMNIST score and the
    classifier's mean confidence on the samples (how sure it is that each sample is some piece of clothing)."""
    classifier = (classifier if classifier is not None else load_classifier()).eval()
    device = next(classifier.parameters()).device
    with torch.no_grad():
        probs = torch.cat([classifier(batch.to(device)).softmax(dim=1).cpu() for batch in samples.split(256)])
    return {
        **Scoring(Metrics.of(impl), real, len(samples), classifier).score(samples),
        "fmnist_score": impl.fmnist_score(samples, classifier),
        "mean_confidence": probs.max(dim=1).values.mean().item(),
    }


def save_figures(
    out: Path,
    model: DiffusionModel,
    sample: Callable,
    samples: Tensor,
    real: Tensor,
    history: dict,
    metrics: dict | None,
    steps: int | None,
) -> None:
    """samples.png, denoising.png, denoising.gif, loss.png and (with metrics) scores.png in `out`."""
    figures = {"samples.png": show_samples_and_real(samples, real, n=64)}
    trajectory = sample(respaced(model, steps), 16, return_all_steps=True).cpu()
    figures["denoising.png"] = plot_denoising(trajectory, n_samples=4)
    denoising_gif(trajectory, out / "denoising.gif")
    if history.get("loss"):
        figures["loss.png"] = plot_losses(history)
    if metrics is not None:
        figures["scores.png"] = plot_score_vs_floor({"our U-Net": metrics})
    for name, figure in figures.items():
        figure.savefig(out / name, dpi=100)
        plt.close(figure)


def main(
    argv: list[str] | None = None,
    impl: Implementation | None = None,
    default: str = "solutions",
    prog: str = "ddpm-course reference part3",
) -> int:
    parser = argparse.ArgumentParser(
        prog=prog,
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__,
    )
    parser.add_argument(
        "--impl",
        action="append",
        help=f"whose Parts 1-3 run: solutions, exercises, a folder, or partK=FILE for one part (a .py or a "
        f"notebook; the other parts then come from the reference); repeatable (default: {default})",
    )
    parser.add_argument("--quick", action="store_true", help="a tiny run (512 images, small U-Net): a smoke test")
    parser.add_argument("--device", default=None, help="cuda, mps or cpu (default: the best available)")
    parser.add_argument("--epochs", type=int, default=None, help="passes over the training set (overrides --minutes)")
    parser.add_argument("--minutes", type=float, default=None, help="train for this wall-clock budget instead")
    parser.add_argument("--n-train", type=int, default=None, help="use only this many training images")
    parser.add_argument("--n-eval", type=int, default=None, help="samples scored by FMNIST-FID (and the floor's N)")
    parser.add_argument("--sampling-steps", type=int, default=None, help="respaced sampling steps (default: all T)")
    parser.add_argument("--resume", default=None, help="continue training from this checkpoint")
    parser.add_argument("--checkpoint", default=None, help="skip training: sample and score this checkpoint")
    parser.add_argument("--no-score", action="store_true", help="skip FMNIST-FID (no classifier needed)")
    parser.add_argument("--out", default="runs/part3", help="folder for the checkpoint, figures and metrics")
    parser.add_argument(
        "--export",
        default=None,
        help="also write a small sampling-only checkpoint here (float16 weights, no optimizer)",
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="CPU threads for torch (1 is fastest on a CPU shared with other jobs)"
    )
    args = parser.parse_args(argv)
    matplotlib.use("Agg")
    if args.threads:
        torch.set_num_threads(args.threads)
    if impl is None:
        impl = Implementation.load(args.impl, default)
    else:
        print("Parts 1-3: the implementation passed to main()")

    device = get_device(args.device)
    run = default_run(device, impl.UnetConfig, quick=args.quick)
    if args.epochs is not None:
        run = replace(run, train=replace(run.train, epochs=args.epochs), fit=replace(run.fit, minutes=None))
    if args.minutes is not None:
        run = replace(run, fit=replace(run.fit, minutes=args.minutes))
    out = Path(args.out)
    run = replace(
        run,
        n_train=args.n_train or run.n_train,
        n_eval=args.n_eval or run.n_eval,
        sampling_steps=args.sampling_steps or run.sampling_steps,
        fit=replace(run.fit, resume_from=args.resume, checkpoint_path=str(out / "checkpoint.pt")),
    )
    out.mkdir(parents=True, exist_ok=True)
    print(f"device: {device}; writing to {out}/")

    began = time.perf_counter()
    train_images, _ = load_fashion_mnist("train")
    test_images, _ = load_fashion_mnist("test")
    train_images = train_images[: run.n_train]
    print(
        f"data: {len(train_images)} training images, {len(test_images)} test images "
        f"({time.perf_counter() - began:.1f} s)"
    )

    log = RunLog()
    if args.checkpoint:
        loaded = load_checkpoint(args.checkpoint, device, model_class=impl.Unet, schedule_class=impl.NoiseSchedule)
        model, history, train_seconds = loaded.model, loaded.history, 0.0
        print(f"loaded {args.checkpoint}: {loaded.epoch} epochs of training, T = {len(model.noise_schedule)}")
        if run.fit.fused_blocks:  # sampling is 1000 network calls per batch: the same twins as training pay here
            print(fuse_blocks(model))
    else:
        model = make_unet(run, impl)
        n_params = sum(p.numel() for p in model.parameters())
        what = f"{run.fit.minutes:g} minutes" if run.fit.minutes else f"{run.train.epochs} epochs"
        print(
            f"training a U-Net of {n_params / 1e6:.2f}M parameters for {what} (batch {run.train.batch_size}, "
            f"T = {run.max_steps}, bf16 {run.fit.mixed_precision}, EMA {run.fit.ema_decay})"
        )
        began = time.perf_counter()
        model = fit(model, impl.diffusion_loss, train_images, run.train, run.fit, log=log)
        train_seconds = time.perf_counter() - began
        history = log.history
        print(
            f"trained in {train_seconds:.0f} s; last loss {log.last('loss'):.4f}; checkpoint {run.fit.checkpoint_path}"
        )
        if args.export:
            export_for_sampling(run.fit.checkpoint_path, args.export)
            print(f"exported {args.export} ({Path(args.export).stat().st_size / 1e6:.1f} MB)")

    model.eval()
    began = time.perf_counter()
    samples = sample_many(model, impl.sample, run.n_eval, run.sample_batch, run.sampling_steps, run.fit.mixed_precision)
    samples = samples.clamp(-1, 1)  # the last step's mean can overshoot a little; the classifier knows [-1, 1]
    sample_seconds = time.perf_counter() - began
    steps = run.sampling_steps or len(model.noise_schedule)
    print(f"sampled {len(samples)} images in {steps} steps in {sample_seconds:.0f} s")

    metrics = None
    if not args.no_score and not CLASSIFIER_WEIGHTS.is_file():
        print(
            f"no FMNIST-FID: the classifier's weights are missing ({CLASSIFIER_WEIGHTS}); "
            "train them with `python -m utils.datasets.classifier --train`"
        )
    elif not args.no_score:
        metrics = evaluate(samples, test_images, impl)
        print(describe(metrics))
        print(f"({PROTOCOL_NOTE.format(**metrics)})")
        print(
            f"FMNIST score {metrics['fmnist_score']:.2f}; classifier's mean confidence {metrics['mean_confidence']:.2f}"
        )
    save_figures(out, model, impl.sample, samples, test_images, history, metrics, run.sampling_steps)
    summary = {
        "device": str(device),
        "train_seconds": train_seconds,
        "sample_seconds": sample_seconds,
        "sampling_steps": steps,
        "final_loss": history["loss"][-1][1] if history.get("loss") else math.nan,
        "run": asdict(run),
        **(metrics or {}),
    }
    (out / "metrics.json").write_text(json.dumps(summary, indent=2, default=str))
    print(f"wrote into {out}/: {', '.join(sorted(p.name for p in out.iterdir()))}")
    print(f"  {FIGURES_NOTE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
