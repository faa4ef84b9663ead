"""The reference Part 3 run in one command: FashionMNIST -> trained U-Net -> samples, figures and FMNIST-FID.

    python -m utils.programs.fashion                      # CUDA: a few minutes; CPU: a smaller run, about 10 minutes
    python -m utils.programs.fashion --quick              # a smoke run in about a minute on a CPU (tiny data and model)
    python -m utils.programs.fashion --epochs 30 --out runs/long
    python -m utils.programs.fashion --minutes 10         # train for a wall-clock budget instead of whole epochs
    python -m utils.programs.fashion --resume runs/part3/checkpoint.pt --epochs 40
    python -m utils.programs.fashion --checkpoint utils/weights/unet_fmnist_cpu.pt   # no training: sample and score

It uses the reference implementations (solutions.part1's train and sample, solutions.part2's Unet, solutions.part3's
scores) and writes into --out: checkpoint.pt, samples.png (generated beside real), denoising.png and denoising.gif,
loss.png, scores.png and metrics.json. FMNIST-FID is always printed beside its real-vs-real floor at the same N.
"""

import argparse
import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import torch
from torch import Tensor

from solutions.part1 import sample, train
from solutions.part2 import Unet, UnetConfig
from solutions.part3 import fmnist_fid, fmnist_score, real_floor
from utils import get_device
from utils.figures.animation import denoising_gif
from utils.engine.checkpoints import export_for_sampling, load_checkpoint, read_checkpoint
from utils.datasets.classifier import WEIGHTS_PATH as CLASSIFIER_WEIGHTS
from utils.datasets.classifier import load_classifier
from utils.datasets.fashion_mnist import load_fashion_mnist
from utils.engine.respacing import respaced
from utils.engine.model import DiffusionModel, TrainConfig
from utils.figures.plotting import plot_denoising, plot_losses
from utils.figures.part3 import plot_score_vs_floor, show_samples_and_real
from utils.engine.run_log import RunLog
from utils.engine.training import bf16_autocast

SHIPPED_CHECKPOINT = Path(__file__).resolve().parents[1] / "weights" / "unet_fmnist_cpu.pt"
# How SHIPPED_CHECKPOINT was made, on a 2-core CPU: 3,476 steps of batch 64 in 20 minutes (about 3.7 epochs).
SHIPPED_COMMAND = ("python -m utils.programs.fashion --device cpu --threads 2 --minutes 20 --n-train 60000 "
                   "--out runs/shipped --export utils/weights/unet_fmnist_cpu.pt")


@dataclass(frozen=True)
class FashionRun:
    """Everything a Part 3 run needs besides the data. `default_run` picks one for the device."""

    unet: dict = field(default_factory=dict)  # UnetConfig fields that differ from Part 2's defaults
    train: TrainConfig = TrainConfig()  # Part 1's training settings (epochs, lr, batch size, T, extras)
    minutes: float | None = None  # if set, train for this wall-clock budget (in chunks of images) instead of epochs
    chunk_size: int = 10_000  # images per chunk of a time-budgeted run; the budget is checked between chunks
    n_train: int | None = None  # use only the first n training images (None: all 60,000)
    sampling_steps: int | None = None  # sample in this many respaced steps (None: all T steps, as in the paper)
    n_eval: int = 2048  # samples scored by FMNIST-FID, beside the floor at the same N
    sample_batch: int = 512  # images sampled at once (memory)


def default_run(device: torch.device, quick: bool = False) -> FashionRun:
    """The run that suits `device`: the full recipe on CUDA, a smaller one elsewhere, a one-minute one with `quick`."""
    if quick:
        return FashionRun(
            unet={"channels": 8, "dim_mults": (1, 2), "attention_levels": ()},
            train=TrainConfig(epochs=1, lr=1e-3, batch_size=64, max_steps=1000, device=str(device)),
            n_train=512, sampling_steps=10, n_eval=64, sample_batch=64,
        )
    if device.type == "cuda":
        # Data on the GPU, bf16 convolutions and an EMA of the weights: recognizable clothes in a few minutes.
        return FashionRun(
            train=TrainConfig(epochs=20, lr=1e-3, batch_size=128, max_steps=1000, device=str(device),
                              mixed_precision=True, ema_decay=0.999),
            n_eval=2048, sample_batch=1024,
        )
    # A CPU (or Apple GPU): a narrower U-Net than Part 2's default (16 channels, attention only at 7x7), one pass
    # over 10,000 images, and 250 respaced sampling steps. The shipped checkpoint is this model and recipe trained for
    # 20 minutes on all 60,000 images: see SHIPPED_COMMAND.
    return FashionRun(
        unet={"channels": 16, "attention_levels": (2,)},
        train=TrainConfig(epochs=1, lr=1e-3, batch_size=64, max_steps=1000, device=str(device), ema_decay=0.995),
        n_train=10_000, chunk_size=5000, sampling_steps=250, n_eval=256, sample_batch=256,
    )


def make_unet(run: FashionRun) -> Unet:
    """The reference U-Net of Part 2 with the run's sizes."""
    return Unet.from_config(replace(UnetConfig(), **run.unet))


def train_for_minutes(model: DiffusionModel, config: TrainConfig, images: Tensor, minutes: float,
                      checkpoint_path: str | Path, chunk_size: int = 10_000, log: RunLog | None = None
                      ) -> DiffusionModel:
    """Part 1's `train` under a wall-clock budget: one pass over a fresh chunk of `images` at a time.

    Each chunk is one "epoch" of `train`, which resumes from the checkpoint the previous chunk saved (weights,
    optimizer, EMA and losses), so the run is the same as one long `train` call whose epochs are the chunks. Training
    stops before a chunk that would end after the budget, judging by the slowest chunk so far.
    """
    log = log if log is not None else RunLog()
    generator = torch.Generator().manual_seed(config.seed or 0)
    order = torch.randperm(len(images), generator=generator)
    chunk_size = min(chunk_size, len(images))
    done = read_checkpoint(config.resume_from)["epoch"] if config.resume_from else 0  # chunks of an earlier run
    start, slowest, chunk = time.perf_counter(), 0.0, 0
    while chunk == 0 or time.perf_counter() - start + slowest <= 60 * minutes:
        first = (chunk * chunk_size) % len(images)  # wraps round: chunk k takes images k*s, ..., k*s + s - 1 (mod N)
        indices = order[(torch.arange(chunk_size) + first) % len(images)]
        chunk_config = replace(config, epochs=done + chunk + 1, checkpoint_path=str(checkpoint_path),
                               resume_from=str(checkpoint_path) if chunk > 0 else config.resume_from,
                               seed=None if config.seed is None else config.seed + done + chunk)
        began = time.perf_counter()
        model = train(model, chunk_config, images[indices], log=log)
        slowest = max(slowest, time.perf_counter() - began)
        chunk += 1
    return model


@torch.no_grad()
def sample_many(model: DiffusionModel, n: int, batch_size: int, steps: int | None = None,
                mixed_precision: bool = False) -> Tensor:
    """n samples from `model` (Algorithm 2, in `steps` respaced steps if given), `batch_size` at a time, on the CPU.

    With `mixed_precision` the network runs in bf16 on a CUDA GPU; the update of x_t stays in float32.
    """
    sampler = respaced(model, steps)
    device = model.noise_schedule.betas.device
    with bf16_autocast(device, mixed_precision):
        return torch.cat([sample(sampler, min(batch_size, n - done)).float().cpu() for done in range(0, n, batch_size)])


def evaluate(samples: Tensor, real: Tensor, classifier=None) -> dict[str, float]:
    """FMNIST-FID of `samples` against as many `real` test images, its floor, the FMNIST score and the classifier's
    mean confidence on the samples (how sure it is that each sample is some piece of clothing)."""
    classifier = (classifier if classifier is not None else load_classifier()).eval()
    n = len(samples)
    device = next(classifier.parameters()).device
    with torch.no_grad():
        probs = torch.cat([classifier(batch.to(device)).softmax(dim=1).cpu() for batch in samples.split(256)])
    return {
        "n": n,
        "fmnist_fid": fmnist_fid(samples, real[:n], classifier),
        "floor": real_floor(n, classifier),
        "fmnist_score": fmnist_score(samples, classifier),
        "mean_confidence": probs.max(dim=1).values.mean().item(),
    }


def save_figures(out: Path, model: DiffusionModel, samples: Tensor, real: Tensor, history: dict,
                 metrics: dict | None, steps: int | None) -> None:
    """samples.png, denoising.png, denoising.gif, loss.png and (with metrics) scores.png in `out`."""
    figures = {"samples.png": show_samples_and_real(samples, real, n=64)}
    trajectory = sample(respaced(model, steps), 16, return_all_steps=True).cpu()
    figures["denoising.png"] = plot_denoising(trajectory, n_samples=4)
    denoising_gif(trajectory, out / "denoising.gif")
    if history.get("loss"):
        figures["loss.png"] = plot_losses(history)
    if metrics is not None:
        figures["scores.png"] = plot_score_vs_floor({"our U-Net": metrics["fmnist_fid"]}, metrics["floor"],
                                                    metrics["n"])
    for name, figure in figures.items():
        figure.savefig(out / name, dpi=100)
        plt.close(figure)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
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
    parser.add_argument("--export", default=None,
                        help="also write a small sampling-only checkpoint here (float16 weights, no optimizer)")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads for torch (1 is fastest on a CPU shared with other jobs)")
    args = parser.parse_args(argv)
    matplotlib.use("Agg")
    if args.threads:
        torch.set_num_threads(args.threads)

    device = get_device(args.device)
    run = default_run(device, quick=args.quick)
    if args.epochs is not None:
        run = replace(run, train=replace(run.train, epochs=args.epochs), minutes=None)
    if args.minutes is not None:
        run = replace(run, minutes=args.minutes)
    run = replace(run, n_train=args.n_train or run.n_train, n_eval=args.n_eval or run.n_eval,
                  sampling_steps=args.sampling_steps or run.sampling_steps,
                  train=replace(run.train, resume_from=args.resume))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(f"device: {device}; writing to {out}/")

    began = time.perf_counter()
    train_images, _ = load_fashion_mnist("train")
    test_images, _ = load_fashion_mnist("test")
    train_images = train_images[: run.n_train]
    print(f"data: {len(train_images)} training images, {len(test_images)} test images "
          f"({time.perf_counter() - began:.1f} s)")

    log = RunLog()
    if args.checkpoint:
        loaded = load_checkpoint(args.checkpoint, device)
        model, history, train_seconds = loaded.model, loaded.history, 0.0
        print(f"loaded {args.checkpoint}: {loaded.epoch} epochs of training, T = {len(model.noise_schedule)}")
    else:
        model = make_unet(run)
        n_params = sum(p.numel() for p in model.parameters())
        checkpoint = out / "checkpoint.pt"
        what = f"{run.minutes:g} minutes" if run.minutes else f"{run.train.epochs} epochs"
        print(f"training a U-Net of {n_params / 1e6:.2f}M parameters for {what} (batch {run.train.batch_size}, "
              f"T = {run.train.max_steps}, bf16 {run.train.mixed_precision}, EMA {run.train.ema_decay})")
        began = time.perf_counter()
        if run.minutes:
            model = train_for_minutes(model, run.train, train_images, run.minutes, checkpoint, run.chunk_size, log)
        else:
            model = train(model, replace(run.train, checkpoint_path=str(checkpoint)), train_images, log=log)
        train_seconds = time.perf_counter() - began
        history = log.history
        print(f"trained in {train_seconds:.0f} s; last loss {log.last('loss'):.4f}; checkpoint {checkpoint}")
        if args.export:
            export_for_sampling(checkpoint, args.export)
            print(f"exported {args.export} ({Path(args.export).stat().st_size / 1e6:.1f} MB)")

    model.eval()
    began = time.perf_counter()
    samples = sample_many(model, run.n_eval, run.sample_batch, run.sampling_steps, run.train.mixed_precision)
    samples = samples.clamp(-1, 1)  # the last step's mean can overshoot a little; the classifier knows [-1, 1]
    sample_seconds = time.perf_counter() - began
    steps = run.sampling_steps or len(model.noise_schedule)
    print(f"sampled {len(samples)} images in {steps} steps in {sample_seconds:.0f} s")

    metrics = None
    if not args.no_score and not CLASSIFIER_WEIGHTS.is_file():
        print(f"no FMNIST-FID: the classifier's weights are missing ({CLASSIFIER_WEIGHTS}); "
              "train them with `python -m utils.datasets.classifier --train`")
    elif not args.no_score:
        metrics = evaluate(samples, test_images)
        print(f"FMNIST-FID {metrics['fmnist_fid']:.3f} vs real-data floor {metrics['floor']:.3f} at N = {metrics['n']} "
              f"(ratio {metrics['fmnist_fid'] / metrics['floor']:.2f}); FMNIST score {metrics['fmnist_score']:.2f}; "
              f"classifier's mean confidence {metrics['mean_confidence']:.2f}")
    save_figures(out, model, samples, test_images, history, metrics, run.sampling_steps)
    summary = {
        "device": str(device), "train_seconds": train_seconds, "sample_seconds": sample_seconds,
        "sampling_steps": steps, "final_loss": history["loss"][-1][1] if history.get("loss") else math.nan,
        "run": asdict(run), **(metrics or {}),
    }
    (out / "metrics.json").write_text(json.dumps(summary, indent=2, default=str))
    print(f"wrote {', '.join(sorted(p.name for p in out.iterdir()))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
