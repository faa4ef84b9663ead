"""`ddpm-course`: the course's commands for students and instructors.

    ddpm-course reference part1 [--quick]     train the reference on color gradients, save samples (1-2 minutes on a CPU)
    ddpm-course reference part3 [...]         the FashionMNIST pipeline: train, sample, score (see --help)
    ddpm-course grade PART [IMPL]             run the graders of one part on IMPL (exercises, solutions, a .py, a notebook)
    ddpm-course grade-class PART FOLDER [...] grade a folder of submissions: a table of steps per student (--help)
    ddpm-course build [--check] [--force]     regenerate the exercise stubs and notebooks from their sources
    ddpm-course bench [...]                   throughput and sample-quality benchmark (Part 3)
"""

import argparse
import importlib
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def run_part1(out_dir: Path, quick: bool) -> Path:
    """Train the reference TinyDiffuser on gradients, sample, and save the figures. Returns the samples image."""
    import torch

    from solutions.part1 import TinyDiffuser, sample, train
    from utils.datasets.images import gradient_images, normalize_img
    from utils.engine.model import TinyDiffuserConfig, TrainConfig
    from utils.figures.plotting import plot_denoising, plot_losses, show_rows
    from utils.engine.run_log import RunLog

    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    shape = (3, 8, 8)
    data = normalize_img(gradient_images(2_000 if quick else 20_000, shape, seed=1))
    trainset, testset = data[: int(0.9 * len(data))], data[int(0.9 * len(data)):]
    config = TrainConfig(epochs=2 if quick else 60, lr=1e-3, batch_size=128, max_steps=100)
    log = RunLog(config)
    model = train(TinyDiffuser(TinyDiffuserConfig(shape, hidden_size=1024, max_steps=100)), config, trainset, testset, log)
    samples = sample(model, 12)
    show_rows({"training images": trainset[:12], "generated": samples.clamp(-1, 1)}).savefig(out_dir / "samples.png")
    plot_losses(log.history).savefig(out_dir / "loss.png")
    plot_denoising(sample(model, 4, return_all_steps=True).clamp(-1, 1)).savefig(out_dir / "denoising.png")
    print(f"final loss {log.last('loss'):.4f}, eval loss {log.last('eval_loss'):.4f}")
    print(f"wrote {out_dir / 'samples.png'}, {out_dir / 'loss.png'}, {out_dir / 'denoising.png'}")
    return out_dir / "samples.png"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="ddpm-course", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n")[1])
    commands = parser.add_subparsers(dest="command", required=True)
    reference = commands.add_parser("reference", help="run a reference pipeline", add_help=False)
    reference.add_argument("part", choices=["part1", "part3"])
    grade = commands.add_parser("grade", help="grade one part")
    grade.add_argument("part", type=int, choices=[1, 2, 3])
    grade.add_argument("impl", nargs="?", default="exercises", help="exercises, solutions, or a .py / .ipynb path")
    commands.add_parser("grade-class", help="grade a class's submissions", add_help=False)
    commands.add_parser("build", help="regenerate stubs and notebooks", add_help=False)
    commands.add_parser("bench", help="benchmark (Part 3)", add_help=False)
    args, rest = parser.parse_known_args(argv)

    if args.command == "build":
        from utils.authoring.build import main as build_main

        return build_main(rest)
    if args.command == "grade-class":
        return importlib.import_module("utils.programs.grade_class").main(rest)
    if args.command == "bench":
        return importlib.import_module("utils.programs.benchmark").main(rest) or 0
    if args.command == "grade":
        import pytest

        return pytest.main([str(REPO_ROOT / "tests" / f"test_part{args.part}.py"), "--impl", args.impl, "-q", *rest])
    if args.part == "part3":
        return importlib.import_module("utils.programs.fashion").main(rest) or 0
    part1 = argparse.ArgumentParser(prog="ddpm-course reference part1")
    part1.add_argument("--quick", action="store_true", help="a smaller run, for a smoke test")
    part1.add_argument("--out", type=Path, default=Path("runs/part1"), help="where the figures go")
    options = part1.parse_args(rest)
    run_part1(options.out, options.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
