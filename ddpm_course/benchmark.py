"""Throughput of our reference U-Net beside a peer of the same size, and the sample quality a fixed budget buys.

    python -m ddpm_course.benchmark                  # best device: throughput, then FMNIST-FID after 5 minutes
    python -m ddpm_course.benchmark --no-fid         # throughput only
    python -m ddpm_course.benchmark --ours eager,fused,fused+graphs --peer eager,graphs   # settings to compare
    python -m ddpm_course.benchmark --device cpu --batch-size 16 --train-steps 5 --timed-steps 2 --no-fid

The peer is `diffusers.UNet2DModel` in the configuration of the Hugging Face diffusion course's 28x28 example (about
1.7M parameters, like Part 2's default Unet). It is an optional extra: `pip install -e ".[bench]"` (or
`pip install diffusers`); without it only our figures are printed.

Both models run through the very same code, the given `fit` loop around the reference `diffusion_loss` (Algorithm 1,
with the device's recipe: bf16 and an EMA on CUDA) and the reference `sample` (Algorithm 2), on the same device and
batch size, so the figures compare networks, not training loops. (`--impl exercises` runs yours instead.)

Each model is measured in each of its settings, a `+`-joined set of the speed-ups of `ddpm_course.speed`:

    eager       none of them
    fused       our blocks' fused twins (GroupNorm, attention, residual blocks); ours only
    cl          channels_last memory layout
    compile     torch.compile, default mode
    graphs      torch.compile in "reduce-overhead" mode: CUDA graphs too

and the ratio compares each model's best. Training images/s are timed after warm-up steps (compilation, cuDNN
autotuning, allocator growth) with the device synchronized; sampling images/s are for all T steps, timed over
`--timed-steps` of them (every step costs the same network call). FMNIST-FID, after `--budget-s` seconds of training
in our best setting and sampling with all T steps, is printed with FMNIST-KID, each with its spread, beside the
real-data floor at the same N (the protocol of `utils.datasets.scoring`).
"""

import itertools
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from ddpm_course.fashion import evaluate
from ddpm_course.runs import (
    PART3_NEEDS,
    Implementation,
    add_run_arguments,
    default_run,
    impl_help,
    make_unet,
    program_parser,
    sample_in_batches,
)
from ddpm_course.speed import SpeedConfig
from utils import get_device
from utils.datasets.fashion_mnist import load_fashion_mnist
from utils.datasets.scoring import PROTOCOL_NOTE, describe
from utils.engine.model import DiffusionModel
from utils.engine.sampling import respaced
from utils.engine.training import FitConfig, TrainConfig, bf16_autocast, fit
from utils.figures.part3 import show_samples_and_real

# With --total-s, a model's further settings are not measured past this share of it: the rest is the FID run's.
THROUGHPUT_SHARE = 1 / 3
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


SETTING_FLAGS = ("eager", "fused", "cl", "compile", "graphs")


def parse_setting(text: str, model: str) -> SpeedConfig:
    """The speed-ups a setting such as "fused+graphs" names, for `model` ("ours" or "peer")."""
    flags = set(text.split("+"))
    unknown = flags - set(SETTING_FLAGS)
    if unknown or not flags or ("eager" in flags and len(flags) > 1):
        raise ValueError(f"setting {text!r}: join any of {', '.join(SETTING_FLAGS[1:])} with '+', or say eager")
    if "fused" in flags and model != "ours":
        raise ValueError(f"setting {text!r}: the fused twins are ours, the peer has its own blocks")
    if {"compile", "graphs"} <= flags:
        raise ValueError(f"setting {text!r}: compile or graphs, not both")
    mode = "reduce-overhead" if "graphs" in flags else "default" if "compile" in flags else None
    return SpeedConfig(fused_blocks="fused" in flags, channels_last="cl" in flags, compile=mode)


@dataclass
class Throughput:
    name: str
    setting: str
    n_params: int
    train_images_per_s: float
    sample_images_per_s: float


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def sampling_rate(model: DiffusionModel, impl: Implementation, batch: int, timed_steps: int, mixed: bool) -> float:
    """Images/s of sampling with all T steps, timed over `timed_steps` of them after an untimed warm-up of three.

    Every step is one network call at the same batch size (`respaced` runs the same network on fewer steps), so
    T / timed_steps times the time of `timed_steps` steps is the time of T.
    """
    device = model.device
    timed_steps = min(timed_steps, len(model.noise_schedule))
    model.eval()
    with bf16_autocast(device, mixed):
        impl.sample(
            respaced(model, min(3, len(model.noise_schedule))), batch
        )  # warm-up at the timed batch size: compiling, autotuning, graphs
        synchronize(device)
        began = time.perf_counter()
        impl.sample(respaced(model, timed_steps), batch)
        synchronize(device)
    per_step = (time.perf_counter() - began) / timed_steps
    return batch / (per_step * len(model.noise_schedule))


def measure(
    name: str,
    setting: str,
    model: DiffusionModel,
    impl: Implementation,
    config: TrainConfig,
    extras: FitConfig,
    speed: SpeedConfig,
    train_steps: int,
    warmup_steps: int,
    sample_batch: int,
    timed_steps: int,
) -> Throughput:
    """Training images/s through `fit` and sampling images/s through `sample` of `model` (built with its schedule)."""
    device = torch.device(config.device)
    image_shape = model.image_shape
    extras = replace(
        extras, progress=False, checkpoint_path=None, resume_from=None, minutes=None, drop_last=bool(speed.compile)
    )
    config = replace(config, epochs=1)
    n_params = sum(p.numel() for p in model.parameters())
    # Random images are as costly to train on as clothes: throughput does not depend on what the pixels show.
    warmup_images = torch.rand(warmup_steps * config.batch_size, *image_shape, device=device) * 2 - 1
    timed_images = torch.rand(train_steps * config.batch_size, *image_shape, device=device) * 2 - 1
    model = fit(model, impl.diffusion_loss, warmup_images, config, extras, prepare=speed.prepare)
    # The warm-up left the model fused and compiled in place; the timed run only keeps the layout.
    timed = replace(speed, fused_blocks=False, compile=None)
    synchronize(device)
    began = time.perf_counter()
    model = fit(model, impl.diffusion_loss, timed_images, config, extras, prepare=timed.prepare)
    synchronize(device)
    train_rate = len(timed_images) / (time.perf_counter() - began)
    sample_rate = sampling_rate(model, impl, sample_batch, timed_steps, extras.mixed_precision)
    return Throughput(name, setting, n_params, train_rate, sample_rate)


def fid_after_budget(
    model: DiffusionModel,
    impl: Implementation,
    config: TrainConfig,
    extras: FitConfig,
    speed: SpeedConfig,
    budget_s: float,
    n: int,
    sample_batch: int,
    n_train: int | None,
    out: Path,
) -> dict:
    """Train `model` for `budget_s` seconds on FashionMNIST, sample n images with all its T steps, score them.

    Leaves the run's checkpoint and a figure of samples beside real images in the folder `out`."""
    train_images, _ = load_fashion_mnist("train")
    test_images, _ = load_fashion_mnist("test")
    device = torch.device(config.device)
    began = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    extras = replace(
        extras,
        minutes=budget_s / 60,
        checkpoint_path=str(out / "checkpoint.pt"),
        progress=False,
        drop_last=bool(speed.compile),
    )
    model = fit(model, impl.diffusion_loss, train_images[:n_train], config, extras, prepare=speed.prepare)
    train_seconds = time.perf_counter() - began
    model.eval()
    synchronize(device)
    began = time.perf_counter()
    with bf16_autocast(device, extras.mixed_precision):
        samples = sample_in_batches(lambda start, size: impl.sample(model, size), n, sample_batch)
    sample_seconds = time.perf_counter() - began
    show_samples_and_real(samples, test_images).savefig(out / "samples.png")
    scores = evaluate(samples, test_images, impl)
    return {"train_seconds": train_seconds, "sample_seconds": sample_seconds, **scores}


def main(argv: list[str] | None = None) -> int:
    parser = program_parser(__doc__, "ddpm-course bench")
    add_run_arguments(parser, impl=impl_help("Parts 1-3", "solutions"), device=None)
    parser.add_argument("--batch-size", type=int, default=128, help="images per training step, for both models")
    parser.add_argument("--ours", default="fused", help="our U-Net's settings to measure, comma-separated")
    parser.add_argument("--peer", default="eager", help="the peer's settings to measure, comma-separated")
    parser.add_argument("--train-steps", type=int, default=50, help="timed training steps")
    parser.add_argument("--warmup-steps", type=int, default=5, help="untimed training steps first")
    parser.add_argument("--sampling-steps", type=int, default=1000, help="T: the schedule's length, all sampled")
    parser.add_argument("--timed-steps", type=int, default=20, help="sampling steps timed for the images/s")
    parser.add_argument("--sample-batch", type=int, default=None, help="images sampled at once (default: batch size)")
    parser.add_argument(
        "--budget-s", type=float, default=None, help="training seconds before FMNIST-FID (default: the CUDA recipe's)"
    )
    parser.add_argument(
        "--total-s", type=float, default=None, help="cut the FID run's budget so that everything ends within this"
    )
    parser.add_argument("--fid-n", type=int, default=2048, help="samples scored, and the floor's N")
    parser.add_argument("--fid-setting", default=None, help="our setting for the FID run (default: our fastest)")
    add_run_arguments(parser, n_train="train the FID run on only this many images")
    parser.add_argument("--no-fid", action="store_true", help="throughput only")
    add_run_arguments(parser, threads=None)
    parser.add_argument("--out", default="runs/benchmark", help="folder for the budgeted run's checkpoint and samples")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    if args.threads:
        torch.set_num_threads(args.threads)
    impl = Implementation.load(args.impl, PART3_NEEDS)
    device = get_device(args.device)
    run = default_run(device, impl.UnetConfig)
    # The same recipe for both models: the device's default (bf16 and an EMA on CUDA), at the batch size asked for.
    config = replace(run.train, batch_size=args.batch_size, device=str(device))
    recipe = run.fit
    settings = {
        "ours": {s: parse_setting(s, "ours") for s in args.ours.split(",")},
        "peer": {s: parse_setting(s, "peer") for s in args.peer.split(",")} if peer_available() else {},
    }
    run = replace(run, unet=impl.UnetConfig(), max_steps=args.sampling_steps)  # Part 2's default sizes, like the peer
    sample_batch = args.sample_batch or args.batch_size

    def build(model: str) -> DiffusionModel:
        torch.manual_seed(0)
        if model == "ours":
            return make_unet(run, impl)
        return DiffusersPeer(PeerConfig(), impl.NoiseSchedule(impl.linear_schedule(args.sampling_steps)))

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{torch.get_num_threads()} CPU threads"
    print(
        f"device: {device} ({name}); torch {torch.__version__}; batch {args.batch_size}; "
        f"bf16 {recipe.mixed_precision and device.type == 'cuda'}; EMA {recipe.ema_decay}; T = {args.sampling_steps}, "
        f"{sample_batch} images sampled at once, {args.timed_steps} steps timed",
        flush=True,
    )
    labels = {"ours": "our Unet (Part 2)", "peer": "diffusers UNet2DModel"}
    print(f"\n{'model':<24}{'setting':<16}{'params':>8}{'train img/s':>13}{'sample img/s':>14}", flush=True)
    best: dict[str, Throughput] = {}
    skipped: list[str] = []
    # The models take turns (ours, peer, ours, ...), so that a run cut short for time still has each model's
    # settings in the same order, and the ratio of bests compares like with like.
    turns = itertools.zip_longest(*[[(name, *item) for item in its.items()] for name, its in settings.items() if its])
    for model_name, text, speed in (turn for row in turns for turn in row if turn is not None):
        late = args.total_s is not None and time.perf_counter() - started > args.total_s * THROUGHPUT_SHARE
        if late and model_name in best:  # every model keeps its first setting, so a ratio can still be made
            skipped.append(f"{model_name} {text}")
            continue
        try:
            r = measure(
                labels[model_name], text, build(model_name), impl, config, recipe, speed,
                args.train_steps, args.warmup_steps, sample_batch, args.timed_steps,
            )  # fmt: skip
        except Exception as error:  # noqa: BLE001 - one setting that fails (a compiler missing) must not end the run
            print(f"{labels[model_name]:<24}{text:<16}failed: {type(error).__name__}: {error}"[:300], flush=True)
            continue
        print(
            f"{r.name:<24}{r.setting:<16}{r.n_params / 1e6:>7.2f}M{r.train_images_per_s:>13.1f}"
            f"{r.sample_images_per_s:>14.2f}",
            flush=True,
        )
        if model_name not in best or r.train_images_per_s > best[model_name].train_images_per_s:
            best[model_name] = r
    if skipped:
        print(f"not measured, to leave the FID run its time (--total-s): {', '.join(skipped)}")
    if not best:
        print("no setting ran: see the errors above")
        return 1
    if len(best) == 2:
        a, b = best["ours"], best["peer"]
        print(
            f"{'ours / peer, best of each':<40}{a.train_images_per_s / b.train_images_per_s:>15.2f}x"
            f"{a.sample_images_per_s / b.sample_images_per_s:>13.2f}x   ({a.setting} vs {b.setting})"
        )
    elif not peer_available():
        print(f"(the peer needs diffusers: {INSTALL_HINT})")

    if not args.no_fid:
        budget_s = (
            args.budget_s
            if args.budget_s is not None
            else 60 * default_run(torch.device("cuda"), impl.UnetConfig).fit.minutes
        )
        if args.total_s is not None:
            # what sampling and scoring take after training, from the measured sampling rate, with room to spare
            rate = best["ours"].sample_images_per_s if "ours" in best else 1.0
            after_s = 2 * args.fid_n / rate + 30
            budget_s = max(0.0, min(budget_s, args.total_s - (time.perf_counter() - started) - after_s))
        setting = args.fid_setting or (best["ours"].setting if "ours" in best else "eager")
        speed = parse_setting(setting, "ours")
        print(
            f"\nFMNIST-FID after {budget_s:g} s of training our Unet ({setting}; N = {args.fid_n}, "
            f"all {args.sampling_steps} sampling steps, {sample_batch} at once)",
            flush=True,
        )
        out = Path(args.out)
        scores = fid_after_budget(
            build("ours"), impl, config, recipe, speed, budget_s, args.fid_n, sample_batch, args.n_train, out
        )
        print(
            f"{describe(scores)}; mean confidence {scores['mean_confidence']:.2f}\n({PROTOCOL_NOTE.format(**scores)})\n"
            f"trained {scores['train_seconds']:.0f} s; sampled {args.fid_n} images x {args.sampling_steps} steps "
            f"in {scores['sample_seconds']:.1f} s; samples in {out / 'samples.png'}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
