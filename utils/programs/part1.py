"""The Part 1 run in one command: train the MLP on color gradients, sample, and save the figures.

ddpm-course reference part1 [--quick]          the reference Part 1
ddpm-course run part1 --impl exercises          yours (or a .py file, or a notebook)
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
from utils.impl import load_impl

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
    print(f"final loss {log.last('loss'):.4f}, eval loss {log.last('eval_loss'):.4f}")
    print(f"wrote {out_dir / 'samples.png'}, {out_dir / 'loss.png'}, {out_dir / 'denoising.png'}")
    return out_dir / "samples.png"


def main(argv: list[str] | None = None, impl: str = "solutions") -> int:
    parser = argparse.ArgumentParser(prog="ddpm-course reference part1", description=__doc__.split("\n\n")[0])
    parser.add_argument("--impl", default=impl, help="solutions (the reference), exercises (yours), or a .py/.ipynb")
    parser.add_argument("--quick", action="store_true", help="a smaller run, for a smoke test")
    parser.add_argument("--out", type=Path, default=Path("runs/part1"), help="where the figures go")
    options = parser.parse_args(argv)
    import matplotlib

    matplotlib.use("Agg")
    run_part1(options.out, options.quick, load_impl(options.impl, 1))
    return 0
