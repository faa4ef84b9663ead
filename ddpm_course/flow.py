"""The Part 5 runs in one command: both ODEs' paths on two moons, a flow-matching U-Net trained on FashionMNIST, and
one ladder of ODE samplers by model calls, scored with the course's protocol.

    ddpm-course reference part5 --toy                         # the paths of both ODEs on two moons (seconds on a CPU)
    ddpm-course reference part5 --train --epochs 6 --export runs/part5/flow.pt   # train the flow U-Net, Part 3's recipe
    ddpm-course reference part5 --ladder --flow-checkpoint runs/part5/flow.pt --n-eval 256
    ddpm-course reference part5 --ladder --n-eval 256            # the shipped flow U-Net beside Part 3's checkpoint
    ddpm-course reference part5 --quick --toy --train --ladder   # all three, tiny: a smoke run in about a minute
    ddpm-course reference part5 --ladder --no-clip --samplers DDIM --pair-with runs/part5  # what clipping changes
    ddpm-course run part5 --quick --toy --train --ladder         # the same with YOUR Parts 1 to 5 (exercises/)

Whose algorithm runs is a parameter, never an import (`ddpm_course.runs.Implementation`): the DDPM side samples Part
3's shipped checkpoint with your Part 4 `ddim_sample` and your Part 5 `pf_ode_drift`, `karras_sigmas` and
`heun_step` (through `karras_sample`); the flow side trains `FlowUnet` with your `flow_matching_loss` in the given
`fit` (Part 3's CPU recipe: the same U-Net sizes, weight average and step-size cooldown) and samples it with your
`flow_sample`. Every rung of the ladder starts from the same noise and, unless --no-clip, sees its model's
predicted clean image clipped to [-1, 1] (`ClippedPrediction` for the DDPM model, `ClippedVelocity` for the flow
model), as Part 4's ladder does: every sampler treated alike. Every score goes through
`utils.datasets.scoring.Scoring`: FMNIST-FID and KID against the first N test images, each with its spread, beside
the floor of N other test images, and every comparison the tables make is a paired difference with its 95% interval
(`Scoring.paired_difference`), as is each rung with the same rung of an earlier run (--pair-with, e.g. clipped
against --no-clip). Everything is written to --out: paths.png, metrics.json, tables.md and each rung's samples
(samples/*.pt).
"""

import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import matplotlib.pyplot as plt
import torch

from ddpm_course.fashion import SHIPPED_CHECKPOINT as PART3_CHECKPOINT
from ddpm_course.guidance import ladder_pairs, markdown_tables, pair_same_rung, print_pair, rung_name
from ddpm_course.runs import (
    Implementation,
    add_run_arguments,
    default_run,
    impl_help,
    load_average,
    program_parser,
    sample_in_batches,
    start_program,
    with_budget,
)
from utils import REPO_ROOT
from utils.datasets.classifier import load_classifier
from utils.datasets.fashion_mnist import load_fashion_mnist
from utils.datasets.scoring import PROTOCOL_NOTE, Metrics, ProtocolConfig, Scoring, describe
from utils.datasets.toy import two_moons
from utils.engine.checkpoints import export_for_sampling, load_checkpoint
from utils.engine.sampling import ClippedPrediction, ClippedVelocity
from utils.engine.training import FitConfig, RunLog, TrainConfig, fit
from utils.figures.part5 import plot_paths

SHIPPED_CHECKPOINT = REPO_ROOT / "utils" / "weights" / "flow_fmnist_cpu.pt"
# How SHIPPED_CHECKPOINT was made: Part 3's CPU recipe (sizes, weight average, cooldown) for Part 3's 5,628 steps.
SHIPPED_COMMAND = (
    "ddpm-course reference part5 --train --device cpu --threads 2 --epochs 6 --n-train 60000 "
    "--export utils/weights/flow_fmnist_cpu.pt"
)

# What the Part 5 runs take from Parts 1 to 5.
PART5_NEEDS = (
    "NoiseSchedule", "linear_schedule", "diffusion_loss", "sample", "Unet", "UnetConfig",
    "feature_statistics", "frechet_distance", "kernel_inception_distance",
    "ddim_sample", "pf_ode_drift", "karras_sigmas", "karras_sample", "flow_matching_loss", "flow_sample",
    "FlowUnet", "ToyMLP", "ToyMLPConfig", "sigmas_of",
)  # fmt: skip


def toy_paths(impl: Implementation, out: Path, quick: bool) -> dict:
    """Train a DDPM and a flow model on two moons with the implementation's losses; draw both ODEs' Euler paths from
    the same noise to paths.png. Returns what was measured."""
    data = two_moons(256 if quick else 4000)
    config = TrainConfig(epochs=3 if quick else 60, lr=2e-3, batch_size=256, device="cpu")
    quiet = FitConfig(progress=False)
    schedule = impl.NoiseSchedule(impl.linear_schedule(100, 1e-3, 0.2))
    began = time.perf_counter()
    ddpm = fit(impl.ToyMLP(impl.ToyMLPConfig(), schedule), impl.diffusion_loss, data, config, quiet).eval()
    flow = fit(impl.ToyMLP(impl.ToyMLPConfig()), impl.flow_matching_loss, data, config, quiet).eval()
    seconds = time.perf_counter() - began
    steps, noise = 20, torch.randn(200, 2, 1, 1, generator=torch.Generator().manual_seed(1))
    sigmas = impl.sigmas_of(schedule)
    levels = impl.karras_sigmas(steps, float(sigmas[0]), float(sigmas[-1])).tolist()
    with torch.no_grad():
        z, ddpm_path = noise * (1 + levels[0] ** 2) ** 0.5, [noise]
        for sigma, sigma_next in zip(levels[:-1], levels[1:]):
            z = z + (sigma_next - sigma) * impl.pf_ode_drift(ddpm, z, sigma)
            ddpm_path.append(z / (1 + sigma_next**2) ** 0.5)
        x, flow_path = noise.clone(), [noise]
        for i in range(steps):
            x = x - (1 / steps) * flow(x, torch.full((len(x),), 1 - i / steps))
            flow_path.append(x)
    fig = plot_paths(
        {
            f"DDPM's ODE ({steps} Euler steps in sigma)": torch.stack(ddpm_path),
            f"flow matching ({steps} Euler steps in s)": torch.stack(flow_path),
        },
        data,
    )
    fig.savefig(out / "paths.png", dpi=100)
    plt.close(fig)
    # how straight: the paths' total length against the total distance between their ends (1 for straight lines;
    # summed, so that a path whose noise starts next to the data does not weigh more than one that travels)
    straightness = {}
    for name, path in (("ddpm", torch.stack(ddpm_path)), ("flow", torch.stack(flow_path))):
        length = (path[1:] - path[:-1]).flatten(2).norm(dim=2).sum()
        chord = (path[-1] - path[0]).flatten(1).norm(dim=1).sum()
        straightness[name] = (length / chord).item()
    print(
        f"two moons: trained both toy models in {seconds:.0f} s; the paths' length over the distance between their "
        f"ends (1 is straight), each in its own coordinates (x_t for DDPM, x_s for the flow; one family of ODEs): "
        f"DDPM's ODE {straightness['ddpm']:.2f}, flow matching {straightness['flow']:.2f}; "
        f"wrote {out / 'paths.png'}"
    )
    return {"seconds": seconds, "path_length_ratio": straightness}


SAMPLERS = ("DDPM", "DDIM", "Heun (EDM)", "flow Euler", "flow Heun")  # DDPM: Algorithm 2 in all T steps


def ladder_settings(quick: bool, full_ddpm: int | None = None) -> list[tuple[str, int]]:
    """(sampler, model calls) of the Part 5 ladder: each sampler at several numbers of model calls, then (with
    `full_ddpm` = T) DDPM's Algorithm 2 in all T steps, the paper's sampler, as the slowest rung."""
    if quick:
        return [("DDIM", 4), ("Heun (EDM)", 3), ("flow Euler", 4), ("flow Heun", 3)]
    calls = (5, 9, 19, 49)  # Heun's 2n - 1 calls for n = 3, 5, 10, 25 levels
    rungs = [(sampler, n) for n in calls for sampler in SAMPLERS[1:]]
    return rungs + ([("DDPM", full_ddpm)] if full_ddpm else [])


def draw(impl: Implementation, sampler: str, calls: int, ddpm, flow):
    """A function (start, size) -> samples for one rung, the given number of model calls each."""
    if sampler == "DDPM":  # Part 1's Algorithm 2 in every one of the model's T steps
        return lambda start, size: impl.sample(ddpm, size)
    if sampler == "DDIM":
        return lambda start, size: impl.ddim_sample(ddpm, size, calls, eta=0.0)
    if sampler == "Heun (EDM)":
        return lambda start, size: impl.karras_sample(ddpm, size, (calls + 1) // 2)
    if sampler == "flow Euler":
        return lambda start, size: impl.flow_sample(flow, size, calls)
    return lambda start, size: impl.flow_sample(flow, size, (calls + 1) // 2, method="heun")


def main(
    argv: list[str] | None = None,
    impl: Implementation | None = None,
    default: str = "solutions",
    prog: str = "ddpm-course reference part5",
) -> int:
    parser = program_parser(__doc__, prog)
    add_run_arguments(parser, impl=impl_help("Parts 1 to 5", default))
    parser.add_argument("--toy", action="store_true", help="both ODEs' paths on two moons")
    parser.add_argument("--train", action="store_true", help="train the flow-matching U-Net on FashionMNIST")
    parser.add_argument("--ladder", action="store_true", help="score the samplers of both models by model calls")
    add_run_arguments(parser, quick="tiny runs: a smoke test", device=None, epochs=None, minutes=None, n_train=None)
    parser.add_argument("--n-eval", type=int, default=256, help="samples per rung scored by FMNIST-FID and KID")
    parser.add_argument("--batch", type=int, default=256, help="images sampled at once")
    parser.add_argument(
        "--flow-checkpoint",
        default=None,
        help="the flow U-Net to score (default: the one trained, else the shipped one)",
    )
    parser.add_argument(
        "--no-full-ddpm", action="store_true", help="leave out DDPM in all 1000 steps (the slowest rung)"
    )
    parser.add_argument(
        "--no-clip", action="store_true", help="leave every model's predicted clean image unclipped (default: clipped)"
    )
    parser.add_argument(
        "--samplers",
        default=None,
        help=f"the ladder's samplers, comma-separated (default: all of {', '.join(SAMPLERS)})",
    )
    parser.add_argument(
        "--pair-with",
        default=None,
        metavar="FOLDER",
        help="an earlier ladder's --out (same --n-eval and --batch): each rung is also paired with the same rung "
        "there (the same noise), e.g. clipped against --no-clip",
    )
    parser.add_argument("--out", default="runs/part5", help="folder for figures, checkpoints and metrics")
    parser.add_argument("--export", default=None, help="also write a small sampling-only copy of the checkpoint here")
    add_run_arguments(parser, threads=None)
    actions = ("toy", "train", "ladder")
    args, impl, device, out, summary = start_program(parser, argv, prog, actions, impl, PART5_NEEDS, default)
    samplers = SAMPLERS if args.samplers is None else tuple(s.strip() for s in args.samplers.split(","))
    if unknown := [s for s in samplers if s not in SAMPLERS]:
        parser.error(f"--samplers: no sampler named {', '.join(unknown)}; the ladder's are {', '.join(SAMPLERS)}")
    if args.pair_with and not (Path(args.pair_with) / "samples").is_dir():
        parser.error(f"--pair-with: {args.pair_with} has no samples/ folder (a ladder's --out has one)")
    if args.toy:
        summary["toy"] = toy_paths(impl, out, args.quick)

    flow_checkpoint = Path(args.flow_checkpoint) if args.flow_checkpoint else SHIPPED_CHECKPOINT
    if args.train:
        run = with_budget(default_run(device, impl.UnetConfig, quick=args.quick), args.epochs, args.minutes)
        run = replace(
            run, n_train=args.n_train or run.n_train, fit=replace(run.fit, checkpoint_path=str(out / "flow.pt"))
        )
        images, _ = load_fashion_mnist("train")
        log = RunLog()
        began = time.perf_counter()
        flow = fit(impl.FlowUnet(run.unet), impl.flow_matching_loss, images[: run.n_train], run.train, run.fit, log=log)
        summary["train"] = {"seconds": time.perf_counter() - began, "steps": log.history["loss"][-1][0]}
        print(f"trained the flow U-Net {summary['train']['steps']} steps in {summary['train']['seconds']:.0f} s")
        flow_checkpoint = Path(run.fit.checkpoint_path)
        if args.export:
            flow_checkpoint = export_for_sampling(flow_checkpoint, args.export)
            print(f"exported {flow_checkpoint} ({flow_checkpoint.stat().st_size / 1e6:.2f} MB)")

    if args.ladder:
        real, _ = load_fashion_mnist("test")
        n = 32 if args.quick else args.n_eval
        scoring = Scoring(Metrics.of(impl), real, n, load_classifier(device))
        ddpm = load_checkpoint(PART3_CHECKPOINT, device, model_class=impl.Unet, schedule_class=impl.NoiseSchedule).model
        if not args.train:  # else the model just trained
            flow = load_checkpoint(flow_checkpoint, device, model_class=impl.FlowUnet).model
        flow = flow.eval()
        if not args.no_clip:  # every sampler alike: x0_hat clipped to [-1, 1], as in Part 4's ladder
            ddpm, flow = ClippedPrediction(ddpm), ClippedVelocity(flow)
        summary["clip_x0"] = not args.no_clip
        rows, features = [], []
        name = "Part 3's checkpoint (DDPM, DDIM, Heun) and the flow U-Net (flow), by model calls"
        summary["ladder"] = {name: rows}
        summary["paired"] = {name: []}
        (out / "samples").mkdir(exist_ok=True)
        rungs = ladder_settings(args.quick, None if args.no_full_ddpm else len(ddpm.noise_schedule))
        rungs = [(sampler, calls) for sampler, calls in rungs if sampler in samplers]
        if args.pair_with:
            against = f"this run (A) against {args.pair_with} (B), rung by rung"
            summary["paired"][against] = []
        for sampler, calls in rungs:
            began = time.perf_counter()
            samples = sample_in_batches(draw(impl, sampler, calls, ddpm, flow), n, min(args.batch, n))
            seconds = time.perf_counter() - began  # sampling alone, as in Part 4's ladder
            row = {"sampler": sampler, "steps": calls, "eta": None, "model_calls": calls, **scoring.score(samples)}
            row["seconds"] = seconds
            rows.append(row)
            features.append(scoring.features(samples))
            file = f"{sampler.replace(' ', '_')}_{calls}.pt"
            torch.save(samples, out / "samples" / file)
            print(f"{sampler:12s} {calls:4d} model calls: {describe(row)}; {row['seconds']:.1f} s", flush=True)
            for i, j in ladder_pairs([calls for _, calls in rungs]):
                if j == len(rows) - 1:  # the pairs this rung completes
                    a, b = (rung_name(rows[k]) for k in (i, j))
                    summary["paired"][name].append(
                        {"a": a, "b": b, **scoring.paired_difference(features[i], features[j])}
                    )
                    print_pair(summary["paired"][name][-1])
            earlier = Path(args.pair_with) / "samples" / file if args.pair_with else None
            if earlier is not None and earlier.is_file():  # the same rung of the earlier run, from the same noise
                pair = pair_same_rung(scoring, row, features[-1], scoring.features(torch.load(earlier)))
                summary["paired"][against].append(pair)
                print_pair(pair)
            summary["load_average"][1:] = [load_average()]
            # after every rung: a long run keeps what it has
            (out / "tables.md").write_text(markdown_tables(summary), encoding="utf-8")
            (out / "metrics.json").write_text(json.dumps(summary, indent=2, default=str))
        print(f"({PROTOCOL_NOTE.format(**ProtocolConfig().__dict__)})")
        print(f"tables for MEASUREMENTS.md in {out / 'tables.md'}")
    (out / "metrics.json").write_text(json.dumps(summary, indent=2, default=str))
    print(f"wrote {out / 'metrics.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
