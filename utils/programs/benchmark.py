"""Throughput of our reference U-Net beside a peer of the same size, and the sample quality a fixed budget buys.

    python -m utils.programs.benchmark                          # on the best device: throughput, then FMNIST-FID after 5 minutes
    python -m utils.programs.benchmark --no-fid                 # throughput only
    python -m utils.programs.benchmark --device cpu --batch-size 16 --train-steps 5 --sampling-steps 10 --no-fid

The peer is `diffusers.UNet2DModel` in the configuration of the Hugging Face diffusion course's 28x28 example (about
1.7M parameters, like Part 2's default Unet). It is an optional extra: `pip install -e ".[bench]"` (or
`pip install diffusers`); without it only our figures are printed.

Both models run through the very same code, the given `fit` loop around the reference `diffusion_loss` (Algorithm 1,
with the device's recipe: bf16 and an EMA on CUDA) and the reference `sample` (Algorithm 2), on the same device and
batch size, so the figures compare networks, not training loops. (`--impl exercises` runs yours instead.) Throughput is measured after warm-up steps (cuDNN autotuning, allocator growth) and with the
device synchronized. FMNIST-FID is printed beside its real-vs-real floor at the same N.
"""

import argparse
import sys
import time
from dataclasses import dataclass, replace

import torch

from utils import get_device
from utils.datasets.fashion_mnist import load_fashion_mnist
from utils.engine.configs import FitConfig, TrainConfig
from utils.engine.model import DiffusionModel
from utils.engine.training import bf16_autocast, fit
from utils.programs.fashion import Implementation, default_run, evaluate, make_unet, sample_many

INSTALL_HINT = 'pip install -e ".[bench]"   (or: pip install diffusers)'


@dataclass(frozen=True)
class PeerConfig:
    image_shape: tuple[int, int, int] = (1, 28, 28)


class DiffusersPeer(DiffusionModel):
    """`diffusers.UNet2DModel` as the Hugging Face course configures it for 28x28 images, behind our interface."""

    def __init__(self, config: PeerConfig = PeerConfig(), noise_schedule=None):
        super().__init__(config, noise_schedule)
        from diffusers import UNet2DModel

        channels, size, _ = config.image_shape
        self.unet = UNet2DModel(
            sample_size=size,
            in_channels=channels,
            out_channels=channels,
            layers_per_block=2,
            block_out_channels=(32, 64, 64),
            down_block_types=("DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D"),
            up_block_types=("AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
        )

    def forward(self, images, num_steps):
        return self.unet(images, num_steps).sample


def peer_available() -> bool:
    try:
        import diffusers  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass
class Throughput:
    name: str
    n_params: int
    train_images_per_s: float
    sample_images_per_s: float


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def measure(
    name: str,
    model: DiffusionModel,
    impl: Implementation,
    config: TrainConfig,
    extras: FitConfig,
    device: torch.device,
    train_steps: int,
    warmup_steps: int,
    sample_batch: int,
) -> Throughput:
    """Training images/s through `fit` and sampling images/s through `sample` of `model` (built with its schedule)."""
    image_shape = model.image_shape
    extras = replace(extras, progress=False, checkpoint_path=None, resume_from=None, minutes=None)
    config = replace(config, epochs=1)
    n_params = sum(p.numel() for p in model.parameters())
    # Random images are as costly to train on as clothes: throughput does not depend on what the pixels show.
    warmup_images = torch.rand(warmup_steps * config.batch_size, *image_shape, device=device) * 2 - 1
    timed_images = torch.rand(train_steps * config.batch_size, *image_shape, device=device) * 2 - 1
    model = fit(model, impl.diffusion_loss, warmup_images, config, extras)
    synchronize(device)
    began = time.perf_counter()
    model = fit(model, impl.diffusion_loss, timed_images, config, extras)
    synchronize(device)
    train_rate = len(timed_images) / (time.perf_counter() - began)

    model.eval()
    with bf16_autocast(device, extras.mixed_precision):
        impl.sample(model, min(sample_batch, 2))  # warm-up
        synchronize(device)
        began = time.perf_counter()
        impl.sample(model, sample_batch)
        synchronize(device)
    sample_rate = sample_batch / (time.perf_counter() - began)
    return Throughput(name, n_params, train_rate, sample_rate)


def fid_after_budget(
    model: DiffusionModel,
    impl: Implementation,
    config: TrainConfig,
    extras: FitConfig,
    budget_s: float,
    n: int,
    sample_batch: int,
    n_train: int | None,
    out: str,
) -> dict:
    """Train `model` for `budget_s` seconds on FashionMNIST, sample n images with all its T steps, score them."""
    train_images, _ = load_fashion_mnist("train")
    test_images, _ = load_fashion_mnist("test")
    began = time.perf_counter()
    extras = replace(extras, minutes=budget_s / 60, checkpoint_path=out, progress=False)
    model = fit(model, impl.diffusion_loss, train_images[:n_train], config, extras)
    seconds = time.perf_counter() - began
    samples = sample_many(model, impl.sample, n, sample_batch, None, extras.mixed_precision).clamp(-1, 1)
    return {"train_seconds": seconds, **evaluate(samples, test_images, impl)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__
    )
    parser.add_argument("--impl", default="solutions", help="whose Parts 1-3: solutions, exercises, or a folder")
    parser.add_argument("--device", default=None, help="cuda, mps or cpu (default: the best available)")
    parser.add_argument("--batch-size", type=int, default=128, help="images per training step, for both models")
    parser.add_argument("--train-steps", type=int, default=50, help="timed training steps")
    parser.add_argument("--warmup-steps", type=int, default=5, help="untimed training steps first")
    parser.add_argument("--sampling-steps", type=int, default=1000, help="T for sampling (throughput and FID)")
    parser.add_argument("--sample-batch", type=int, default=None, help="images sampled at once (default: batch size)")
    parser.add_argument("--budget-s", type=float, default=300.0, help="training seconds before FMNIST-FID")
    parser.add_argument("--fid-n", type=int, default=2048, help="samples scored, and the floor's N")
    parser.add_argument("--n-train", type=int, default=None, help="train the FID run on only this many images")
    parser.add_argument("--no-fid", action="store_true", help="throughput only")
    parser.add_argument("--peer-fid", action="store_true", help="also train and score the peer for the budget")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    parser.add_argument("--out", default="runs/benchmark/checkpoint.pt", help="checkpoint of the budgeted run")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    impl = Implementation.load(args.impl)

    device = get_device(args.device)
    run = default_run(device, impl.UnetConfig)
    # The same recipe for both models: the device's default (bf16 and an EMA on CUDA), at the batch size asked for.
    config = replace(run.train, batch_size=args.batch_size, device=str(device))
    run = replace(run, unet=impl.UnetConfig(), max_steps=args.sampling_steps)  # Part 2's default sizes, like the peer
    sample_batch = args.sample_batch or args.batch_size

    def schedule():
        return impl.NoiseSchedule(impl.linear_schedule(args.sampling_steps))

    models = {"our Unet (Part 2)": make_unet(run, impl)}
    if peer_available():
        models["diffusers UNet2DModel (peer)"] = DiffusersPeer(PeerConfig(), schedule())
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{torch.get_num_threads()} CPU threads"
    print(
        f"device: {device} ({name}); batch {args.batch_size}; bf16 {run.fit.mixed_precision and device.type == 'cuda'}"
        f"; EMA {run.fit.ema_decay}; T = {args.sampling_steps}, {sample_batch} images sampled at once"
    )

    results = [
        measure(label, model, impl, config, run.fit, device, args.train_steps, args.warmup_steps, sample_batch)
        for label, model in models.items()
    ]
    print(f"\n{'model':<32}{'params':>9}{'train img/s':>14}{'sample img/s':>15}")
    for r in results:
        print(f"{r.name:<32}{r.n_params / 1e6:>8.2f}M{r.train_images_per_s:>14.1f}{r.sample_images_per_s:>15.2f}")
    if len(results) == 2:
        a, b = results
        print(
            f"{'ours / peer':<32}{'':>9}{a.train_images_per_s / b.train_images_per_s:>13.2f}x"
            f"{a.sample_images_per_s / b.sample_images_per_s:>14.2f}x"
        )
    else:
        print(f"(the peer needs diffusers: {INSTALL_HINT})")

    if not args.no_fid:
        to_score = {"our Unet": make_unet(run, impl)}
        if args.peer_fid and peer_available():
            to_score["peer"] = DiffusersPeer(PeerConfig(), schedule())
        print(
            f"\nFMNIST-FID after {args.budget_s:g} s of training "
            f"(N = {args.fid_n}, {args.sampling_steps} sampling steps)"
        )
        for label, model in to_score.items():
            scores = fid_after_budget(
                model, impl, config, run.fit, args.budget_s, args.fid_n, sample_batch, args.n_train, args.out
            )
            print(
                f"{label:<12} FMNIST-FID {scores['fmnist_fid']:8.3f}   floor {scores['floor']:.3f}   "
                f"ratio {scores['fmnist_fid'] / scores['floor']:.2f}   "
                f"mean confidence {scores['mean_confidence']:.2f}"
                f"   (trained {scores['train_seconds']:.0f} s)"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
