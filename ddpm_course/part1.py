"""The Part 1 run in one command: train the MLP on color gradients, sample, and save the figures.

    ddpm-course reference part1 [--quick]           the reference Part 1
    ddpm-course run part1                           yours, in exercises/part1.py
    ddpm-course run part1 --impl my_part1.ipynb     yours, from a notebook (or a .py file, or a folder)

It writes into --out: samples.png (training images above generated ones), loss.png (the training loss by step) and
denoising.png (four samples at steps of Algorithm 2, pure noise on the left, the images on the right).
"""

import math
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import Tensor

from ddpm_course.impl import REFERENCE, load_impl
from ddpm_course.runs import Implementation, add_run_arguments, program_parser
from utils.datasets.images import describe_gradient_samples, gradient_images
from utils.engine.model import check_reaches_noise, normalize_img
from utils.engine.training import FitConfig, RunLog, TrainConfig, fit, mean_loss
from utils.figures.plotting import plot_denoising, plot_losses, show_rows

IMAGE_SHAPE = (3, 8, 8)


@dataclass(frozen=True)
class Part1Recipe:
    """The reference Part 1 run. Each choice was measured (MEASUREMENTS.md, "Part 1: what each choice moved"): samples as
    colorful as the data and clean gradients, in 105 epochs of training (98 to 265 s of wall time on a 2-core CPU, with
    torch's default 2 threads or 1: the README's set-up)."""

    n_images: int = 20_000  # color gradients; 90% to train on, 10% held out to score the samples against
    T: int = 100  # steps of noise: a tenth of the paper's, so sampling is ten times faster
    # beta_T is 10x the paper's, so that alpha_bar_T = 2e-5: x_T is noise. beta_1 is 40x the paper's: the loss counts
    # an error in the guessed image alpha_bar_t / (1 - alpha_bar_t) times, 250 at t = 1 rather than about 10,000.
    min_noise: float = 4e-3
    max_noise: float = 0.2
    hidden_size: int = 384  # three hidden layers: depth lets the channels agree on one direction of blending
    n_hidden_layers: int = 3
    epochs: int = 105
    lr: float = 1e-3
    batch_size: int = 128
    lr_cooldown: float | None = 0.5  # the step size falls to 0 over the second half: clean samples, colors kept
    ema_decay: float | None = None  # an average of the weights cleans the samples too, but washes out their colors
    n_scored: int = 2_000  # samples scored against the held-out images

    def quick(self) -> "Part1Recipe":
        """A smoke-test version: a tenth of the data, two epochs, fewer samples scored."""
        return replace(self, n_images=2_000, epochs=2, n_scored=500)

    def betas(self, part1) -> Tensor:
        return part1.linear_schedule(self.T, self.min_noise, self.max_noise)


def run_part1(
    out_dir: Path, quick: bool = False, part1=None, recipe: Part1Recipe = Part1Recipe(), seed: int = 0
) -> Path:
    """Train `part1`'s TinyDiffuser (an Implementation, or a Part 1 module; the reference's if None) on gradients, sample, score, and save the figures.

    Returns the path of the samples image."""
    part1 = part1 if part1 is not None else load_impl("solutions", 1)
    recipe = recipe.quick() if quick else recipe
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    data = normalize_img(gradient_images(recipe.n_images, IMAGE_SHAPE, seed=1 + seed))
    trainset, testset = data[: int(0.9 * len(data))], data[int(0.9 * len(data)) :]
    config = TrainConfig(epochs=recipe.epochs, lr=recipe.lr, batch_size=recipe.batch_size, seed=seed)
    log = RunLog(config)
    schedule = part1.NoiseSchedule(recipe.betas(part1))
    print(f"schedule: T = {len(schedule)}, alpha_bar_T = {check_reaches_noise(schedule):.1e} (pure noise at t = T)")
    model_config = part1.TinyDiffuserConfig(IMAGE_SHAPE, recipe.hidden_size, recipe.n_hidden_layers)
    model = part1.TinyDiffuser(model_config, schedule)
    # Algorithm 1 with part1's own loss, in the given loop, for its step-size cooldown (see the notebook, section 5)
    extras = FitConfig(lr_cooldown=recipe.lr_cooldown, ema_decay=recipe.ema_decay, progress=False)
    start = time.perf_counter()
    model = fit(model, part1.diffusion_loss, trainset, config, extras, log)
    seconds = time.perf_counter() - start
    log.log(log.history["loss"][-1][0], eval_loss=mean_loss(model, part1.diffusion_loss, testset, config.batch_size))
    scored = part1.sample(model, recipe.n_scored)
    samples = scored[:12]
    show_rows({"training images": trainset[:12], "generated": samples.clamp(-1, 1)}).savefig(out_dir / "samples.png")
    plot_losses(log.history).savefig(out_dir / "loss.png")
    plot_denoising(part1.sample(model, 4, return_all_steps=True).clamp(-1, 1)).savefig(out_dir / "denoising.png")
    print(
        f"trained {recipe.epochs} epochs in {seconds:.0f} s of wall time on {torch.get_num_threads()} CPU thread(s) "
        f"(seed {seed})"
    )
    print(describe_gradient_samples(scored, testset))
    print(
        "  (residual: RMS distance of each sample from the nearest true gradient, 0 for real images, 0.02 or less is "
        "clean; color: the samples' spread of values, saturation, mean colors and contrast over the held-out "
        "images', 1.0 as colorful as the data, below 0.9 washed out)"
    )
    alpha_bar_1 = schedule.alpha_bar(1).item()
    weight_at_1 = alpha_bar_1 / (1 - alpha_bar_1)  # eq. 4 turns an error in x_0 into one in the noise
    last_epoch = [value for _, value in log.history["loss"][-math.ceil(len(trainset) / recipe.batch_size) :]]
    print(
        f"loss over the last epoch {sum(last_epoch) / len(last_epoch):.4f}, held-out loss {log.last('eval_loss'):.4f} "
        f"(on {len(testset)} images; both swing with the t's drawn: at t = 1 an error in the guessed image counts "
        f"{weight_at_1:.0f} times over)"
    )
    print(
        f"wrote {out_dir / 'samples.png'} (training images above generated ones), {out_dir / 'loss.png'} (the "
        f"training loss by step) and {out_dir / 'denoising.png'} (Algorithm 2 from noise, left, to images, right)"
    )
    return out_dir / "samples.png"


NEEDS = (
    "linear_schedule",
    "NoiseSchedule",
    "TinyDiffuserConfig",
    "TinyDiffuser",
    "diffusion_loss",
    "sample",
)  # run order


def main(argv: list[str] | None = None, default: str = REFERENCE, prog: str = "ddpm-course reference part1") -> int:
    parser = program_parser(__doc__, prog)
    parser.epilog = __doc__.split("\n\n", 1)[1]
    add_run_arguments(
        parser,
        impl=f"whose Part 1 runs: solutions, exercises, a folder, a .py file or a notebook (default: {default})",
        quick="a smaller run, for a smoke test",
    )
    parser.add_argument("--out", type=Path, default=Path("runs/part1"), help="where the figures go")
    parser.add_argument("--seed", type=int, default=0, help="seeds the data, the initial weights and the training")
    options = parser.parse_args(argv)
    import matplotlib

    matplotlib.use("Agg")
    impl = Implementation.load(options.impl, NEEDS, default)
    print(
        f"training the MLP on color gradients ({'quick' if options.quick else 'full'} run); writing to {options.out}/"
    )
    run_part1(options.out, options.quick, impl, seed=options.seed)
    return 0
