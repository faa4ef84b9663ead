"""The shape every program of the course shares: whose parts it runs, the recipe it trains with, its command line,
and how it draws many samples.

    Implementation      the functions and classes a run takes from Parts 1 to 5 (yours or the reference's)
    Run, default_run    a run's sizes and settings, chosen once for the device and for a quick or a full run
    add_run_arguments   the options the programs share (--impl, --quick, --device, ...), with one help text each
    sample_in_batches   many samples, a batch at a time, each batch seeded so that two settings are paired

Whose algorithm runs is a parameter, never an import: a program names the pieces it needs (`PART3_NEEDS`, say),
`Implementation.load` takes each from the part --impl says (`ddpm_course.impl`: the reference, exercises/, a folder,
a file or a notebook), and the given machinery around them (`utils.engine`) is the same for everyone.
"""

import argparse
import os
import shlex
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

import torch
from torch import Tensor

from ddpm_course.impl import load_parts
from ddpm_course.speed import SpeedConfig
from utils import get_device
from utils.engine.model import DiffusionModel
from utils.engine.training import FitConfig, TrainConfig


def _piece(part: int):
    return field(default=None, metadata={"part": part})


@dataclass(frozen=True)
class Implementation:
    """The pieces of the student's algorithm a run uses, each from its part; a later part adds its own fields.

    Built from the parts' modules with `Implementation.of({1: part1, 2: part2})`, from --impl values with `load`, or
    by name in a notebook (`Implementation(sample=sample, ...)`). Pieces a run does not use stay None.
    """

    NoiseSchedule: type = _piece(1)
    linear_schedule: Callable = _piece(1)
    TinyDiffuserConfig: type = _piece(1)
    TinyDiffuser: type = _piece(1)
    diffusion_loss: Callable = _piece(1)
    sample: Callable = _piece(1)
    Unet: type = _piece(2)
    UnetConfig: type = _piece(2)
    feature_statistics: Callable = _piece(3)
    frechet_distance: Callable = _piece(3)
    kernel_inception_distance: Callable = _piece(3)
    fmnist_score: Callable = _piece(3)
    cosine_schedule: Callable = _piece(4)
    ddim_sample: Callable = _piece(4)
    ConditionalUnet: type = _piece(4)
    ConditionalUnetConfig: type = _piece(4)
    conditional_loss: Callable = _piece(4)
    guided_eps: Callable = _piece(4)
    sigmas_of: Callable = _piece(5)
    pf_ode_drift: Callable = _piece(5)
    karras_sigmas: Callable = _piece(5)
    karras_sample: Callable = _piece(5)
    flow_matching_loss: Callable = _piece(5)
    flow_sample: Callable = _piece(5)
    FlowUnet: type = _piece(5)
    ToyMLP: type = _piece(5)
    ToyMLPConfig: type = _piece(5)

    @classmethod
    def part_of(cls, name: str) -> int:
        """The part that defines the piece `name`."""
        return next(f.metadata["part"] for f in fields(cls) if f.name == name)

    @classmethod
    def of(cls, modules: dict[int, object], names: Iterable[str] | None = None) -> "Implementation":
        """`names` (default: every piece of the parts given) taken from the modules (or any objects) of `modules`,
        part number -> module. Missing pieces are all named at once."""
        names = list(names) if names is not None else [f.name for f in fields(cls) if f.metadata["part"] in modules]
        missing = [name for name in names if not hasattr(modules[cls.part_of(name)], name)]
        if missing:
            raise AttributeError(f"the implementation lacks {', '.join(missing)}")
        return cls(**{name: getattr(modules[cls.part_of(name)], name) for name in names})

    @classmethod
    def load(
        cls, values: str | list[str] | None, names: Iterable[str], default: str = "solutions", show=print
    ) -> "Implementation":
        """The pieces `names` from the parts `values` name (--impl values: see ddpm_course.impl), each checked to be
        defined and not the untouched stub; `show` is told first which file each part comes from."""
        needs: dict[int, list[str]] = {}
        for name in names:
            needs.setdefault(cls.part_of(name), []).append(name)
        return cls.of(load_parts(values, dict(sorted(needs.items())), default, show), names)


# What the Part 3 programs (the run, the benchmark, the step profile) take from Parts 1 to 3.
PART3_NEEDS = (
    "NoiseSchedule", "linear_schedule", "diffusion_loss", "sample", "Unet", "UnetConfig",
    "feature_statistics", "frechet_distance", "kernel_inception_distance", "fmnist_score",
)  # fmt: skip


@dataclass(frozen=True)
class Run:
    """Everything a U-Net run needs besides the data and the implementation. `default_run` picks one for the device."""

    unet: object  # the U-Net's sizes: Part 2's UnetConfig, or Part 4's ConditionalUnetConfig
    max_steps: int = 1000  # T of the schedule the U-Net is built with (the paper's)
    train: TrainConfig = TrainConfig()  # Algorithm 1's settings: epochs, lr, batch size, device
    fit: FitConfig = FitConfig()  # the long-run extras: EMA, bf16, checkpoints, a time budget
    speed: SpeedConfig = SpeedConfig()  # fused twins, compile, channels_last: `fit(..., prepare=run.speed.prepare)`
    n_train: int | None = None  # use only the first n training images (None: all 60,000)
    sampling_steps: int | None = None  # sample in this many respaced steps (None: all T steps, as in the paper)
    n_eval: int = 2048  # samples scored by FMNIST-FID and KID, beside the floor at the same N
    sample_batch: int = 512  # images sampled at once (memory)
    p_uncond: float = 0.1  # a conditional model's labels dropped in training (Ho and Salimans use 0.1 or 0.2)


def default_run(device: torch.device, unet_config: type, quick: bool = False, conditional: bool = False) -> Run:
    """The run that suits `device`: the full recipe on CUDA, a smaller one elsewhere, a one-minute one with `quick`.

    `unet_config` is the config class of the U-Net to train (Part 2's UnetConfig, or Part 4's ConditionalUnetConfig
    with `conditional`, yours or the reference's); the run's sizes are one of it.
    """
    if quick:
        return Run(
            unet=unet_config(channels=8, dim_mults=(1, 2), attention_levels=()),
            train=TrainConfig(epochs=1, lr=1e-3, batch_size=64, device=str(device)),
            fit=FitConfig(progress=False),
            n_train=512,
            sampling_steps=10,
            n_eval=64,
            sample_batch=64,
        )
    if device.type == "cuda":
        # Data on the GPU, bf16 convolutions, fused blocks and an EMA of the weights. Part 3 trains for a fixed five
        # minutes (the epochs count only where `minutes` is cleared): the same wait on any GPU, more steps on a faster
        # one; Part 4's conditional model trains for its 20 epochs.
        return Run(
            unet=unet_config(),
            train=TrainConfig(epochs=20, lr=1e-3, batch_size=128, device=str(device)),
            fit=FitConfig(mixed_precision=True, ema_decay=0.999, minutes=None if conditional else 5.0),
            speed=SpeedConfig(fused_blocks=True),
            n_eval=2048,
            sample_batch=1024,
        )
    # A CPU (or Apple GPU): a narrower U-Net than Part 2's default (16 channels; attention only at 7x7), one pass over
    # 10,000 images, and 250 respaced sampling steps. The shipped checkpoints are this
    # model and recipe trained on all 60,000 images: see SHIPPED_COMMAND in ddpm_course.fashion and .guidance.
    return Run(
        unet=unet_config(channels=16, attention_levels=(2,)),
        train=TrainConfig(epochs=1, lr=1e-3, batch_size=64, device=str(device)),
        fit=FitConfig(ema_decay=0.999, lr_cooldown=0.3),
        n_train=10_000,
        sampling_steps=250,
        n_eval=256,
        sample_batch=256,
    )


# The options the programs share: each one's type and action, and its help unless a program says it its own way.
RUN_OPTIONS = {
    "impl": dict(action="append"),
    "quick": dict(action="store_true", help="a tiny run (512 images, small U-Net): a smoke test"),
    "device": dict(default=None, help="cuda, mps or cpu (default: the best available)"),
    "epochs": dict(type=int, default=None, help="passes over the training set (overrides --minutes)"),
    "minutes": dict(type=float, default=None, help="train for this wall-clock budget instead"),
    "n_train": dict(type=int, default=None, help="use only this many training images"),
    "threads": dict(type=int, default=None, help="CPU threads for torch"),
}


def with_budget(run: Run, epochs: int | None, minutes: float | None) -> Run:
    """`run` trained for `epochs` passes (which clears any time budget) or else for `minutes`, where given."""
    if epochs is not None:
        return replace(run, train=replace(run.train, epochs=epochs), fit=replace(run.fit, minutes=None))
    if minutes is not None:
        return replace(run, fit=replace(run.fit, minutes=minutes))
    return run


def impl_help(parts: str, default: str) -> str:
    """--impl's help for a run of `parts` ("Parts 1-3", say)."""
    return (
        f"whose {parts} run: solutions, exercises, a folder, or partK=FILE for one part (a .py or a notebook; the "
        f"other parts then come from the reference); repeatable (default: {default})"
    )


def program_parser(doc: str, prog: str) -> argparse.ArgumentParser:
    """A program's parser: its name, the first paragraph of its docstring as description, the whole as epilog."""
    return argparse.ArgumentParser(
        prog=prog, description=doc.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=doc
    )


def add_run_arguments(parser: argparse.ArgumentParser, **helps: str | None) -> None:
    """Add the shared options named (`quick=None`, `n_train="..."`: --quick, --n-train) to `parser`, in that order,
    each with the help given, or its usual one for None."""
    for name, help_text in helps.items():
        options = RUN_OPTIONS[name]
        parser.add_argument("--" + name.replace("_", "-"), **{**options, "help": help_text or options.get("help")})


def start_program(
    parser: argparse.ArgumentParser,
    argv: list[str] | None,
    prog: str,
    actions: tuple[str, ...],
    impl: Implementation | None,
    needs: Iterable[str],
    default: str,
) -> tuple[argparse.Namespace, Implementation, torch.device, Path, dict]:
    """The start every measuring program shares: its arguments (at least one of `actions`, if any, asked for), its
    implementation (`impl`, else the pieces `needs` from --impl), its device, its output folder (made), and its
    summary so far: where and how it runs, and the load average as it began (`summary["load_average"]`)."""
    import matplotlib

    args = parser.parse_args(argv)
    matplotlib.use("Agg")
    if args.threads:
        torch.set_num_threads(args.threads)
    if actions and not any(getattr(args, action) for action in actions):
        options = [f"--{action}" for action in actions]
        parser.error(f"nothing to do: give {', '.join(options[:-1])} or {options[-1]} (or several)")
    impl = impl if impl is not None else Implementation.load(args.impl, needs, default)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    device = get_device(args.device)
    summary = {
        "device": str(device),
        "threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "command": f"{prog} " + shlex.join(sys.argv[1:] if argv is None else argv),
        "load_average": [load_average()],
    }
    return args, impl, device, out, summary


def load_average() -> float | None:
    """The machine's one-minute load average, or None on an OS that keeps none (Windows)."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else None


def make_unet(run: Run, impl: Implementation, schedule: Callable | None = None) -> DiffusionModel:
    """The implementation's U-Net with the run's sizes (its conditional one when the run's sizes are
    ConditionalUnetConfig's), built with the schedule `schedule(T)` (default: the linear one) of T = run.max_steps."""
    conditional = impl.ConditionalUnetConfig is not None and isinstance(run.unet, impl.ConditionalUnetConfig)
    unet = impl.ConditionalUnet if conditional else impl.Unet
    return unet(run.unet, impl.NoiseSchedule((schedule or impl.linear_schedule)(run.max_steps)))


@torch.no_grad()
def sample_in_batches(draw: Callable[[int, int], Tensor], n: int, batch_size: int, seed: int = 0) -> Tensor:
    """`draw(start, size)` for consecutive batches covering n samples, gathered on the CPU and clamped to [-1, 1].

    Pairing: torch's random generators are seeded with `seed + start` before each batch, so two settings sampled
    with the same seed and batch size start every batch from the same x_T (a sampler's first draw) and the same
    stream of noise after it, whatever the other setting drew before. Differences between them are then the
    sampler's, not the draw's.
    """
    batches = []
    for start in range(0, n, batch_size):
        torch.manual_seed(seed + start)
        batches.append(draw(start, min(batch_size, n - start)).float().cpu())
    return torch.cat(batches).clamp(-1, 1)
