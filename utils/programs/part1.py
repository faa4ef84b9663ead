"""The Part 1 run in one command: train the MLP on color gradients, sample, and save the figures.

    ddpm-course reference part1 [--quick]           the reference Part 1
    ddpm-course run part1                           yours, in exercises/part1.py
    ddpm-course run part1 --impl my_part1.ipynb     yours, from a notebook (or a .py file, or a folder)

It writes into --out: samples.png (training images above generated ones), loss.png (the training loss by step) and
denoising.png (four samples at steps of Algorithm 2, pure noise on the left, the images on the right).
"""

import argparse
from pathlib import Path

import torch

from utils.datasets.images import gradient_images
from utils.engine.configs import FitConfig, TrainConfig
from utils.engine.pixels import normalize_img
from utils.engine.run_log import RunLog
from utils.engine.training import fit, mean_loss
from utils.figures.plotting import plot_denoising, plot_losses, show_rows
from utils.impl import REFERENCE, load_impl, load_parts

IMAGE_SHAPE = (3, 8, 8)


def run_part1(out_dir: Path, quick: bool = False, part1=None) -> Path:
    """Train `part1`'s TinyDiffuser (the reference's if None) on gradients, sample, and save the figures.

    Returns the path of the samples image."""
    part1 = part1 if part1 is not None else load_impl("solutions", 1)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    data = normalize_img(gradient_images(2_000 if quick else 20_000, IMAGE_SHAPE, seed=1))
    trainset, testset = data[: int(0.9 * len(data))], data[int(0.9 * len(data)) :]
    config = TrainConfig(epochs=2 if quick else 50, lr=1e-3, batch_size=128)
    log = RunLog(config)
    schedule = part1.NoiseSchedule(part1.linear_schedule(100))
    model = part1.TinyDiffuser(part1.TinyDiffuserConfig(IMAGE_SHAPE, hidden_size=384, n_hidden_layers=3), schedule)
    # Algorithm 1 with part1's own loss, in the given loop, for its average of the weights (see the notebook, section 5)
    model = fit(model, part1.diffusion_loss, trainset, config, FitConfig(ema_decay=0.999, progress=False), log)
    log.log(log.history["loss"][-1][0], eval_loss=mean_loss(model, part1.diffusion_loss, testset, config.batch_size))
    samples = part1.sample(model, 12)
    show_rows({"training images": trainset[:12], "generated": samples.clamp(-1, 1)}).savefig(out_dir / "samples.png")
    plot_losses(log.history).savefig(out_dir / "loss.png")
    plot_denoising(part1.sample(model, 4, return_all_steps=True).clamp(-1, 1)).savefig(out_dir / "denoising.png")
    print(
        f"training loss {log.last('loss'):.4f} (the last minibatch, with the weights being trained); held-out loss "
        f"{log.last('eval_loss'):.4f} (on {len(testset)} images, with the average of the weights that samples)"
    )
    if quick:  # 2 epochs are about 30 steps, and an average with decay 0.999 is then still mostly the random start
        print(
            "  (in a --quick run the average of the weights has seen too few steps to move far from its random "
            "start, so its held-out loss is far above the training loss; the full run brings the two together)"
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
    parser = argparse.ArgumentParser(
        prog=prog, description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.epilog = __doc__.split("\n\n", 1)[1]
    parser.add_argument(
        "--impl",
        action="append",
        help=f"whose Part 1 runs: solutions, exercises, a folder, a .py file or a notebook (default: {default})",
    )
    parser.add_argument("--quick", action="store_true", help="a smaller run, for a smoke test")
    parser.add_argument("--out", type=Path, default=Path("runs/part1"), help="where the figures go")
    options = parser.parse_args(argv)
    import matplotlib

    matplotlib.use("Agg")
    parts = load_parts(options.impl, {1: NEEDS}, default)
    print(
        f"training the MLP on color gradients ({'quick' if options.quick else 'full'} run); writing to {options.out}/"
    )
    run_part1(options.out, options.quick, parts[1])
    return 0
