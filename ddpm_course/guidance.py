"""The Part 4 runs in one command: train a class-conditional U-Net, then score samplers and guidance on it.

    ddpm-course reference part4 --train --minutes 25 --export runs/part4/cond.pt   # train (cosine schedule) and export
    ddpm-course reference part4 --ladder --n-eval 256    # the sampler ladder on the shipped checkpoints: FID, KID, s
    ddpm-course reference part4 --sweep --sweep-n 500     # guidance weight w vs FMNIST-FID, KID and class accuracy
    ddpm-course reference part4 --ladder --ladder-models linear --ladder-against mine.pt   # your Part 3 U-Net vs ours
    ddpm-course run part4 --ladder                       # the same with YOUR Parts 1, 3 and 4 (exercises/)
    ddpm-course run part4 --ladder --impl part4=my_part4.ipynb   # your notebook's Part 4, the reference 1 and 3

Whose algorithm runs is a parameter, never an import (as in `ddpm_course.fashion`): `Implementation` (ddpm_course.runs)
gathers what the runs need (`PART4_NEEDS`) from Parts 1, 3 and 4 (Part 2 comes in through Part 4's ConditionalUnet, which builds on
the reference U-Net), each from wherever --impl says (ddpm_course.impl). The ladder samples the shipped Part 3 checkpoint (linear schedule,
unconditional) and the shipped conditional checkpoint without labels (cosine schedule); the sweep samples the
conditional one with guidance. Every score goes through `utils.datasets.scoring.Scoring` (one reference, one floor,
each score with its spread) and every rung and weight is paired (the same x_T and noise), and so is every rung of
--ladder-against's checkpoint with the same rung of Part 3's. Everything is written to
--out: metrics.json, and tables.md, the tables of MEASUREMENTS.md with the command, N, device and load that made them.
"""

import json
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from functools import partial
from pathlib import Path

import matplotlib.pyplot as plt
import torch
from torch import Tensor

from ddpm_course.fashion import SHIPPED_CHECKPOINT as UNCONDITIONAL_CHECKPOINT
from ddpm_course.runs import (
    Implementation,
    Run,
    add_run_arguments,
    default_run,
    impl_help,
    load_average,
    make_unet,
    program_parser,
    sample_in_batches,
    start_program,
    with_budget,
)
from utils import REPO_ROOT
from utils.datasets.classifier import load_classifier
from utils.datasets.fashion_mnist import load_fashion_mnist
from utils.datasets.scoring import PROTOCOL_NOTE, Metrics, ProtocolConfig, Scoring, describe, describe_difference
from utils.engine.checkpoints import export_for_sampling, load_checkpoint
from utils.engine.model import DiffusionModel
from utils.engine.sampling import ClippedPrediction, GuidedModel, respaced
from utils.engine.training import RunLog, fit

SHIPPED_CHECKPOINT = REPO_ROOT / "utils" / "weights" / "unet_fmnist_cond_cpu.pt"
# How SHIPPED_CHECKPOINT was made: the CPU recipe (16 channels, weight average 0.999, the step size cooled down over
# the last 30%) for 6 epochs of all 60,000 images, 5,628 steps of batch 64, in 62 minutes on one thread (nice 10) of a
# 2-core CPU shared with other jobs.
SHIPPED_COMMAND = (
    "ddpm-course reference part4 --train --device cpu --threads 1 --epochs 6 --n-train 60000 "
    "--out runs/part4_shipped --export utils/weights/unet_fmnist_cond_cpu.pt"
)


# What the Part 4 runs take from Parts 1, 3 and 4. Part 2 comes in through Part 4's ConditionalUnet.
PART4_NEEDS = (
    "NoiseSchedule", "sample", "feature_statistics", "frechet_distance", "kernel_inception_distance",
    "cosine_schedule", "ddim_sample", "Unet", "ConditionalUnet", "ConditionalUnetConfig", "conditional_loss", "guided_eps",
)  # fmt: skip


def train_conditional(
    run: Run, impl: Implementation, images: Tensor, labels: Tensor, log: RunLog | None = None
) -> DiffusionModel:
    """Train a fresh conditional U-Net (cosine schedule) on labelled images with the given loop and the
    implementation's loss."""
    model = make_unet(run, impl, impl.cosine_schedule)
    loss = partial(impl.conditional_loss, p_uncond=run.p_uncond)
    images, labels = images[: run.n_train], labels[: run.n_train]
    return fit(model, loss, images, run.train, run.fit, log=log, labels=labels, prepare=run.speed.prepare)


def ladder_settings(
    quick: bool = False, steps: tuple[int, ...] = (10, 20, 50, 100)
) -> list[tuple[str, int | None, float | None]]:
    """(sampler, steps, eta) of the ladder: DDIM at eta 0 and 1 with each number of `steps`, respaced DDPM with those
    of 50 or more, and DDPM in all T steps."""
    if quick:
        return [("DDPM", 10, None), ("DDIM", 5, 0.0), ("DDIM", 10, 0.0), ("DDIM", 10, 1.0)]
    settings = [("DDIM", n, eta) for eta in (0.0, 1.0) for n in steps]
    return settings + [("DDPM", n, None) for n in steps if n >= 50] + [("DDPM", None, None)]  # the slowest last


def sampler_ladder(
    model: DiffusionModel,
    impl: Implementation,
    real: Tensor,
    n: int,
    batch_size: int,
    settings: list,
    classifier=None,
    seed: int = 0,
    clip_x0: bool = True,
    on_row: Callable[[dict], None] | None = None,
    scoring: Scoring | None = None,
    features: list[Tensor] | None = None,
) -> list[dict]:
    """FMNIST-FID, KID and wall time of `n` samples from `model` for each (sampler, steps, eta) of `settings`.

    DDPM runs Part 1's `sample` (through `respaced` when steps < T); DDIM runs Part 4's `ddim_sample`. The rungs are
    paired: every one samples its batches from the same seeds (`sample_in_batches`), so all start from the same x_T
    and, where stochastic, the same noise stream. Every rung is scored by one `Scoring` (the same reference, the same
    floor, each score with its spread; pass `scoring` to share one across models). With `clip_x0` (the default)
    every sampler sees the predicted clean image clipped to [-1, 1] (`ClippedPrediction`). `on_row` is called with
    each row as soon as it is measured (to print progress). Each rung's classifier features are appended to
    `features` when given, for `compare_rungs`.
    """
    scoring = scoring if scoring is not None else Scoring(Metrics.of(impl), real, n, classifier)
    model = ClippedPrediction(model) if clip_x0 else model
    T = len(model.noise_schedule)
    rows = []
    for sampler, steps, eta in settings:
        began = time.perf_counter()
        if sampler == "DDPM":
            draw = partial(_ddpm_batch, respaced(model, steps), impl.sample)
        else:
            draw = partial(_ddim_batch, model, impl.ddim_sample, steps, eta)
        samples = sample_in_batches(draw, n, batch_size, seed)
        seconds = time.perf_counter() - began
        rows.append(
            {
                "sampler": sampler,
                "steps": steps or T,
                "eta": eta,
                "model_calls": steps or T,
                **scoring.score(samples),
                "seconds": seconds,
            }
        )
        if features is not None:
            features.append(scoring.features(samples))
        if on_row is not None:
            on_row(rows[-1])
    return rows


def ladder_pairs(calls: list[int]) -> list[tuple[int, int]]:
    """The pairs of rungs (indices into `calls`, each rung's model calls) a ladder compares: every two rungs with the
    same number of model calls, and the rung with the most calls (DDPM in all T steps), when it stands alone,
    against each rung of the next most."""
    pairs = [(i, j) for i in range(len(calls)) for j in range(i + 1, len(calls)) if calls[i] == calls[j]]
    most = max(calls, default=0)
    if calls.count(most) == 1 and len(calls) > 1:
        below = max(c for c in calls if c != most)
        pairs += [(i, calls.index(most)) for i, c in enumerate(calls) if c == below]
    return pairs


def compare_rungs(scoring: Scoring, rows: list[dict], features: list[Tensor], on_pair=None) -> list[dict]:
    """The paired FID differences of a ladder's rungs (`ladder_pairs`), each with its 95% interval: the rungs were
    sampled from the same x_T, row by row (`Scoring.paired_difference`)."""
    pairs = []
    for i, j in ladder_pairs([row["model_calls"] for row in rows]):
        a, b = (rung_name(rows[k]) for k in (i, j))
        pairs.append({"a": a, "b": b, **scoring.paired_difference(features[i], features[j])})
        if on_pair is not None:
            on_pair(pairs[-1])
    return pairs


def pair_same_rung(scoring: Scoring, row: dict, features_a: Tensor, features_b: Tensor) -> dict:
    """One rung of two runs (two checkpoints, or clipped and not), sampled from the same x_T: the paired FID
    difference A minus B with its 95% interval (`Scoring.paired_difference`)."""
    name = rung_name(row)
    return {"a": f"{name}, A", "b": f"{name}, B", **scoring.paired_difference(features_a, features_b)}


def rung_name(row: dict) -> str:
    """A rung as the tables name it: its sampler, its steps, and its eta where it has one."""
    return f"{row['sampler']} {row['steps']}" + ("" if row.get("eta") is None else f" eta {row['eta']}")


def _ddpm_batch(model, sample, start: int, size: int) -> Tensor:
    return sample(model, size)


def _ddim_batch(model, ddim_sample, steps, eta, start: int, size: int) -> Tensor:
    return ddim_sample(model, size, steps, eta)


def guided_sample(
    model: DiffusionModel,
    impl: Implementation,
    labels: Tensor,
    w: float,
    steps: int,
    x_T: Tensor | None = None,
    clip_x0: bool = True,
) -> Tensor:
    """One image per label, by DDIM (eta = 0) in `steps` steps with guidance weight w, x0_hat clipped to [-1, 1]."""
    guided = GuidedModel(model, labels, w, impl.guided_eps)
    x_T = x_T.to(model.device) if x_T is not None else None  # a student's ddim_sample may take it as it comes
    return impl.ddim_sample(ClippedPrediction(guided) if clip_x0 else guided, len(labels), steps, x_T=x_T)


def guidance_sweep(
    model: DiffusionModel,
    impl: Implementation,
    real: Tensor,
    n: int,
    batch_size: int,
    weights: list[float],
    steps: int,
    classifier=None,
    seed: int = 0,
    scoring: Scoring | None = None,
    features: list[Tensor] | None = None,
    correct: list[Tensor] | None = None,
) -> list[dict]:
    """For each guidance weight w: n samples asking for the classes in turn (equal numbers where the number of
    classes divides n), by `guided_sample`, scored by `Scoring`
    (FMNIST-FID and KID with their spreads, beside the floor) and by the classifier's accuracy on the class each
    sample was asked for, with its binomial standard error. The weights are paired: sample i starts from the same
    x_T at every w (DDIM at eta = 0 draws nothing else). Guided samples cost two model evaluations per step (one
    batched call of 2B). Each weight's classifier features are appended to `features`, and whether the classifier
    gave each sample its requested class to `correct`, when given, for `compare_weights`."""
    classifier = (classifier if classifier is not None else load_classifier()).eval()
    device = next(classifier.parameters()).device
    labels = torch.arange(n) % model.config.num_classes
    scoring = scoring if scoring is not None else Scoring(Metrics.of(impl), real, n, classifier)
    x_T = torch.randn(n, *model.image_shape, generator=torch.Generator().manual_seed(seed))
    rows = []
    for w in weights:
        began = time.perf_counter()
        samples = sample_in_batches(
            lambda start, size, w=w: guided_sample(
                model, impl, labels[start : start + size], w, steps, x_T=x_T[start : start + size]
            ),
            n,
            batch_size,
            seed,
        )
        seconds = time.perf_counter() - began
        with torch.no_grad():
            predicted = torch.cat([classifier(b.to(device)).argmax(dim=1).cpu() for b in samples.split(256)])
        hits = predicted == labels
        accuracy = hits.float().mean().item()
        rows.append(
            {
                "w": w,
                "steps": steps,
                **scoring.score(samples),
                "accuracy": accuracy,
                "accuracy_se": (accuracy * (1 - accuracy) / n) ** 0.5,
                "seconds": seconds,
            }
        )
        if features is not None:
            features.append(scoring.features(samples))
        if correct is not None:
            correct.append(hits)
    return rows


def compare_weights(
    scoring: Scoring, rows: list[dict], features: list[Tensor], correct: list[Tensor], on_pair=None
) -> list[dict]:
    """Each weight of a guidance sweep against the next, paired (the same x_T): the FID difference
    (`Scoring.paired_difference`) and, under "accuracy", that of the accuracy on the requested class
    (`Scoring.paired_accuracy_difference`), each with its 95% interval."""
    pairs = []
    for i in range(len(rows) - 1):
        pairs.append(
            {
                "a": f"w = {rows[i]['w']}",
                "b": f"w = {rows[i + 1]['w']}",
                **scoring.paired_difference(features[i], features[i + 1]),
                "accuracy": scoring.paired_accuracy_difference(correct[i], correct[i + 1]),
            }
        )
        if on_pair is not None:
            on_pair(pairs[-1])
    return pairs


def print_pair(pair: dict) -> None:
    """A pair of `compare_rungs` or `compare_weights` as the programs print it: FID's difference, then accuracy's."""
    print(f"  {describe_difference(pair['a'], pair['b'], pair)}", flush=True)
    if "accuracy" in pair:
        print(f"  {describe_difference(pair['a'], pair['b'], pair['accuracy'], 'accuracy')}", flush=True)


def per_class(n: int, classes: int = 10) -> str:
    """How many of a sweep's n samples ask for each class (`guidance_sweep` asks for the classes in turn)."""
    fewest = n // classes
    return f"{fewest} per class" if n % classes == 0 else f"{fewest} or {fewest + 1} per class"


def markdown_tables(summary: dict) -> str:
    """The ladder and the sweep of a run's summary as MEASUREMENTS.md's Markdown tables, headed by how they were measured:
    the command, N, the device, torch's threads and the machine's load average before and after."""
    load, protocol = summary["load_average"], ProtocolConfig()
    load = "no load average" if None in load else f"load average {load[0]:.1f} before and {load[1]:.1f} after"
    lines = [
        f"Measured by `{summary['command']}` on {summary['device']} ({summary.get('cpus', '?')} cores, "
        f"{summary['threads']} torch thread(s), {load}). Each score ± its sd: FMNIST-FID over bootstrap "
        f"resamples of the samples, KID its standard error from {protocol.kid_subsets} subsets; the floor is the mean "
        f"± sd over {protocol.floor_draws} sets of N held-out real test images scored like the samples against the "
        "same reference (the first N test images). "
        + {
            (True, True): "Every rung and every weight starts from the same x_T and noise stream.",
            (True, False): "Every rung starts from the same x_T and noise stream.",
            (False, True): "Every weight starts from the same x_T.",
        }.get((bool(summary.get("ladder")), bool(summary.get("sweep"))), "")
        + {
            True: " Every sampler sees its model's predicted clean image clipped to [-1, 1].",
            False: " No sampler clips its model's predicted clean image.",
        }.get(summary.get("clip_x0"), ""),
        "",
    ]

    def pm(row: dict, value: str, spread: str) -> str:
        return f"{row[value]:.1f} ± {row[spread]:.1f}"

    for name, rows in summary.get("ladder", {}).items():
        lines += [
            f"Ladder, {name}, N = {rows[0]['n']}: floor FMNIST-FID {pm(rows[0], 'floor', 'floor_sd')}, "
            f"KID {rows[0]['kid_floor']:.2f} ± {rows[0]['kid_floor_sd']:.2f}.",
            "",
            "| sampler | steps (model calls) | eta | FMNIST-FID | FMNIST-KID | seconds |",
            "|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {r['sampler']} | {r['steps']} | {'-' if r['eta'] is None else r['eta']} | "
            f"{pm(r, 'fmnist_fid', 'fmnist_fid_sd')} | {r['kid']:.2f} ± {r['kid_se']:.2f} | {r['seconds']:.0f} |"
            for r in rows
        ]
        lines.append("")
    for name, pairs in summary.get("paired", {}).items():
        if not pairs:  # nothing was paired (a --pair-with folder without these rungs)
            continue
        accuracy = all("accuracy" in p for p in pairs)
        lines += [
            f"Paired differences, {name}: FMNIST-FID of A minus that of B, sampled from the same x_T, with the 95% "
            f"interval over {ProtocolConfig().paired_resamples} joint bootstrap resamples of both sets and the "
            "reference. A is better where the interval lies below 0, B where it lies above; else no difference is "
            "shown."
            + (
                " The accuracy on the requested class likewise, over the same number of resamples of the pairs of "
                "samples (higher is better)."
                if accuracy
                else ""
            ),
            "",
            "| A | B | FID(A) - FID(B) | 95% interval |"
            + (" accuracy(A) - accuracy(B) | 95% interval |" if accuracy else ""),
            "|---|---|---|---|" + ("---|---|" if accuracy else ""),
        ]
        for p in pairs:
            row = f"| {p['a']} | {p['b']} | {p['difference']:+.1f} | [{p['low']:+.1f}, {p['high']:+.1f}] |"
            if accuracy:
                a = p["accuracy"]
                row += f" {a['difference']:+.3f} | [{a['low']:+.3f}, {a['high']:+.3f}] |"
            lines.append(row)
        lines.append("")
    if summary.get("sweep"):
        rows = summary["sweep"]
        lines += [
            f"Guidance sweep, DDIM with {rows[0]['steps']} steps, eta = 0, N = {rows[0]['n']} "
            f"({per_class(rows[0]['n'])}): floor FMNIST-FID {pm(rows[0], 'floor', 'floor_sd')}, "
            f"KID {rows[0]['kid_floor']:.2f} ± {rows[0]['kid_floor_sd']:.2f}.",
            "",
            "| w | accuracy on the requested class | FMNIST-FID | FMNIST-KID | seconds |",
            "|---|---|---|---|---|",
        ]
        lines += [
            f"| {r['w']} | {r['accuracy']:.3f} ± {r['accuracy_se']:.3f} | {pm(r, 'fmnist_fid', 'fmnist_fid_sd')} | "
            f"{r['kid']:.2f} ± {r['kid_se']:.2f} | {r['seconds']:.0f} |"
            for r in rows
        ]
    return "\n".join(lines) + "\n"


def main(
    argv: list[str] | None = None,
    impl: Implementation | None = None,
    default: str = "solutions",
    prog: str = "ddpm-course reference part4",
) -> int:
    parser = program_parser(__doc__, prog)
    add_run_arguments(parser, impl=impl_help("Parts 1, 3 and 4", default))
    parser.add_argument("--train", action="store_true", help="train a conditional U-Net (cosine schedule)")
    parser.add_argument("--ladder", action="store_true", help="score the sampler ladder")
    parser.add_argument("--sweep", action="store_true", help="score the guidance sweep")
    add_run_arguments(
        parser,
        quick="tiny runs: a smoke test",
        device=None,
        epochs=None,
        minutes="train for this wall-clock budget",
        n_train=None,
    )
    parser.add_argument("--n-eval", type=int, default=256, help="samples per setting scored by FMNIST-FID")
    parser.add_argument("--sweep-n", type=int, default=200, help="samples per guidance weight (the classes in turn)")
    parser.add_argument("--sweep-steps", type=int, default=20, help="DDIM steps of the guidance sweep")
    parser.add_argument(
        "--sweep-weights", default="0,0.5,1,2,3,5,8", help="the sweep's guidance weights w, comma-separated"
    )
    parser.add_argument(
        "--full-ddpm",
        choices=("both", "linear", "none"),
        default="both",
        help="which models also sample with DDPM's 1000 steps (the slowest rung)",
    )
    parser.add_argument(
        "--ladder-steps",
        default="10,20,50,100",
        help="the ladder's numbers of respaced steps, comma-separated (DDPM respaced only at 50 and more)",
    )
    parser.add_argument(
        "--ladder-models", choices=("both", "linear", "cosine"), default="both", help="which models go up the ladder"
    )
    parser.add_argument(
        "--ladder-against",
        default=None,
        metavar="CHECKPOINT",
        help="another checkpoint of Part 3's U-Net to send up the linear ladder, each rung paired with the same rung "
        "of Part 3's checkpoint (the same x_T): which of the two is better, with its interval",
    )
    parser.add_argument("--batch", type=int, default=256, help="images sampled at once")
    parser.add_argument(
        "--checkpoint",
        default=None,
        help="the conditional checkpoint to score (default: the one just trained, else the shipped)",
    )
    parser.add_argument("--out", default="runs/part4", help="folder for checkpoints, figures and metrics")
    parser.add_argument("--export", default=None, help="also write a small sampling-only copy of the checkpoint here")
    add_run_arguments(parser, threads=None)
    actions = ("train", "ladder", "sweep")
    args, impl, device, out, summary = start_program(parser, argv, prog, actions, impl, PART4_NEEDS, default)
    doing = [action for action in actions if getattr(args, action)]
    print(f"device: {device}; running {', '.join(doing)}{' (quick)' if args.quick else ''}; writing to {out}/")
    checkpoint = Path(args.checkpoint) if args.checkpoint else SHIPPED_CHECKPOINT

    if args.train:
        run = default_run(device, impl.ConditionalUnetConfig, quick=args.quick, conditional=True)
        run = with_budget(run, args.epochs, args.minutes)
        run = replace(
            run,
            n_train=args.n_train or (None if args.minutes or args.epochs else run.n_train),
            fit=replace(run.fit, checkpoint_path=str(out / "checkpoint.pt")),
        )
        images, labels = load_fashion_mnist("train")
        log = RunLog()
        began = time.perf_counter()
        model = train_conditional(run, impl, images, labels, log)
        summary["train"] = {
            "seconds": time.perf_counter() - began,
            "steps": log.history["loss"][-1][0],
            "final_loss": log.last("loss"),
            "run": asdict(run),
        }
        print(
            f"trained {summary['train']['steps']} steps in {summary['train']['seconds']:.0f} s; "
            f"last loss {log.last('loss'):.4f}"
        )
        checkpoint = Path(run.fit.checkpoint_path)
        if args.export:
            export_for_sampling(checkpoint, args.export)
            checkpoint = Path(args.export)
            print(f"exported {args.export} ({checkpoint.stat().st_size / 1e6:.2f} MB)")
        del model

    if args.ladder or args.sweep:
        real, _ = load_fashion_mnist("test")
        classifier = load_classifier(device)
        conditional = load_checkpoint(
            checkpoint, device, model_class=impl.ConditionalUnet, schedule_class=impl.NoiseSchedule
        ).model
    if args.ladder_against and (not args.ladder or args.ladder_models == "cosine"):
        parser.error("--ladder-against pairs with the linear ladder: give --ladder with --ladder-models linear or both")
    if args.ladder:
        settings = ladder_settings(args.quick, tuple(int(n) for n in args.ladder_steps.split(",")))
        scoring = Scoring(Metrics.of(impl), real, args.n_eval, classifier)

        def unconditional(path: Path) -> DiffusionModel:
            return load_checkpoint(path, device, model_class=impl.Unet, schedule_class=impl.NoiseSchedule).model

        shipped = "linear schedule (Part 3's checkpoint)"
        models = {  # each loaded only if it goes up the ladder
            shipped: lambda: unconditional(UNCONDITIONAL_CHECKPOINT),
            "cosine schedule (conditional, no label)": lambda: conditional,
        }
        if args.ladder_against:
            against = f"linear schedule ({args.ladder_against})"
            models[against] = lambda: unconditional(Path(args.ladder_against))
        summary["ladder"], features_of = {}, {}
        for name, build in models.items():
            if args.ladder_models != "both" and not name.startswith(args.ladder_models):
                continue
            full = args.full_ddpm == "both" or (args.full_ddpm == "linear" and name.startswith("linear"))
            features = features_of[name] = []
            summary["ladder"][name] = sampler_ladder(
                build(),
                impl,
                real,
                args.n_eval,
                args.batch,
                [s for s in settings if full or s[1] is not None],
                classifier,
                on_row=lambda row, name=name: print(
                    f"{name:40s} {row['sampler']} {row['steps']:5d} steps eta {row['eta']}: {describe(row)}; "
                    f"{row['seconds']:.1f} s",
                    flush=True,
                ),
                scoring=scoring,
                features=features,
            )
            summary.setdefault("paired", {})[name] = compare_rungs(
                scoring,
                summary["ladder"][name],
                features,
                on_pair=print_pair,
            )
        if args.ladder_against:  # the other checkpoint against Part 3's, rung by rung, from the same x_T
            title = f"{args.ladder_against} (A) against Part 3's checkpoint (B), rung by rung"
            print(f"{title}:")
            summary["paired"][title] = [
                pair_same_rung(scoring, row, fa, fb)
                for row, fa, fb in zip(summary["ladder"][shipped], features_of[against], features_of[shipped])
            ]
            for pair in summary["paired"][title]:
                print_pair(pair)
    if args.sweep:
        weights = [0.0, 1.0, 3.0] if args.quick else [float(w) for w in args.sweep_weights.split(",")]
        sweep_scoring, features, correct = Scoring(Metrics.of(impl), real, args.sweep_n, classifier), [], []
        rows = guidance_sweep(
            conditional, impl, real, args.sweep_n, args.batch, weights, args.sweep_steps, classifier,
            scoring=sweep_scoring, features=features, correct=correct,
        )  # fmt: skip
        summary["sweep"] = rows
        for row in rows:
            print(
                f"w = {row['w']:4.1f}: {describe(row)}; accuracy on the asked class {row['accuracy']:.3f} ± "
                f"{row['accuracy_se']:.3f}; {row['seconds']:.1f} s"
            )
        summary.setdefault("paired", {})["guidance sweep, each weight against the next"] = compare_weights(
            sweep_scoring, rows, features, correct, on_pair=print_pair
        )
    if args.ladder or args.sweep:
        summary["load_average"][1:] = [load_average()]
        summary["clip_x0"] = True  # both of this program's ladders and its sweep clip x0_hat
        print(f"({PROTOCOL_NOTE.format(**ProtocolConfig().__dict__)})")
        (out / "tables.md").write_text(markdown_tables(summary), encoding="utf-8")
        print(f"tables for MEASUREMENTS.md in {out / 'tables.md'}")
    (out / "metrics.json").write_text(json.dumps(summary, indent=2, default=str))
    print(
        f"wrote {out / 'metrics.json'} (every number above); FMNIST-FID is printed beside the floor two sets of real "
        "images score at the same N: the nearer a sampler comes to it, the better its samples"
    )
    plt.close("all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
