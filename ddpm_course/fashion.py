"""The Part 3 run in one command: FashionMNIST -> trained U-Net -> samples, figures and FMNIST-FID.

    ddpm-course reference part3                      # CUDA: 5 minutes of training; CPU: a smaller run, about 10
    ddpm-course reference part3 --quick              # a smoke run in about a minute on a CPU (tiny data and model)
    ddpm-course reference part3 --epochs 30 --out runs/long
    ddpm-course reference part3 --minutes 10         # train for a wall-clock budget instead of whole epochs
    ddpm-course reference part3 --resume runs/part3/checkpoint.pt --epochs 40
    ddpm-course reference part3 --checkpoint utils/weights/unet_fmnist_cpu.pt   # no training: sample and score
    ddpm-course run part3                            # the same run with YOUR Parts 1, 2 and 3 (exercises/)
    ddpm-course run part3 --impl part1=part1_gradients.ipynb   # your notebook's Part 1, the reference Parts 2, 3

Whose algorithm runs is a parameter, never an import: `Implementation` (ddpm_course.runs) gathers the names the run
needs from a Part 1, a Part 2 and a Part 3, each from wherever --impl says (the reference, exercises/, a folder, a file
or a notebook). The given machinery around them is the same for everyone: `utils.engine.training.fit` calls your `diffusion_loss`, checkpoints
save and resume, the weight average and bf16 apply, and your `sample` and scores make the figures.

It writes into --out: checkpoint.pt, samples.png (generated beside real), denoising.png and denoising.gif, loss.png,
scores.png and metrics.json. FMNIST-FID and FMNIST-KID are always printed with their spread, beside the real-data
floor measured against the same reference at the same N (`utils.datasets.scoring`).
"""

import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path

import matplotlib.pyplot as plt
import torch
from torch import Tensor

from ddpm_course.runs import (
    PART3_NEEDS,
    Implementation,
    add_run_arguments,
    default_run,
    impl_help,
    make_unet,
    program_parser,
    sample_in_batches,
    start_program,
    with_budget,
)
from ddpm_course.speed import fuse_blocks
from utils import REPO_ROOT
from utils.datasets.classifier import WEIGHTS_PATH as CLASSIFIER_WEIGHTS
from utils.datasets.classifier import load_classifier
from utils.datasets.fashion_mnist import load_fashion_mnist
from utils.datasets.scoring import PROTOCOL_NOTE, Metrics, Scoring, describe
from utils.engine.checkpoints import export_for_sampling, load_checkpoint
from utils.engine.model import DiffusionModel
from utils.engine.sampling import respaced
from utils.engine.training import RunLog, bf16_autocast, fit
from utils.figures.animation import denoising_gif
from utils.figures.part3 import plot_score_vs_floor, show_samples_and_real
from utils.figures.plotting import plot_denoising, plot_losses

SHIPPED_CHECKPOINT = REPO_ROOT / "utils" / "weights" / "unet_fmnist_cpu.pt"
# How SHIPPED_CHECKPOINT was made: the CPU recipe (16 channels, weight average 0.999, the step size cooled down over
# the last 30%) for 6 epochs of all 60,000 images, 5,628 steps of batch 64, in 75 minutes on one thread of a 2-core
# CPU shared with other jobs.
SHIPPED_COMMAND = (
    "ddpm-course reference part3 --device cpu --threads 1 --epochs 6 --n-train 60000 --no-score "
    "--out runs/shipped --export utils/weights/unet_fmnist_cpu.pt"
)


FIGURES_NOTE = (
    "samples.png: generated images beside real ones; denoising.png and .gif: Algorithm 2 from noise to image; "
    "loss.png: the training loss by step; scores.png: FMNIST-FID beside the floor two real sets score at the same N "
    "(the nearer, the better); metrics.json: every number above"
)


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
    parser = program_parser(__doc__, prog)
    add_run_arguments(parser, impl=impl_help("Parts 1-3", default), quick=None, device=None, epochs=None)
    add_run_arguments(parser, minutes=None, n_train=None)
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
    add_run_arguments(parser, threads="CPU threads for torch (1 is fastest on a CPU shared with other jobs)")
    given = impl is not None
    args, impl, device, out, _ = start_program(parser, argv, prog, (), impl, PART3_NEEDS, default)
    if given:
        print("Parts 1-3: the implementation passed to main()")
    run = with_budget(default_run(device, impl.UnetConfig, quick=args.quick), args.epochs, args.minutes)
    run = replace(
        run,
        n_train=args.n_train or run.n_train,
        n_eval=args.n_eval or run.n_eval,
        sampling_steps=args.sampling_steps or run.sampling_steps,
        fit=replace(run.fit, resume_from=args.resume, checkpoint_path=str(out / "checkpoint.pt")),
    )
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
        if run.speed.fused_blocks:  # sampling is 1000 network calls per batch: the same twins as training pay here
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
        model = fit(model, impl.diffusion_loss, train_images, run.train, run.fit, log=log, prepare=run.speed.prepare)
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
    # clamped to [-1, 1]: the last step's mean can overshoot a little, and the classifier knows [-1, 1]
    sampler = respaced(model, run.sampling_steps)
    with bf16_autocast(model.device, run.fit.mixed_precision):
        samples = sample_in_batches(lambda start, size: impl.sample(sampler, size), run.n_eval, run.sample_batch)
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
