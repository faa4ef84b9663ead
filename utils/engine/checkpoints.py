"""Save a trained diffusion model with everything needed to sample from it again, and continue training from it.

A checkpoint is one `torch.save`d dict of plain values and tensors (so `torch.load(..., weights_only=True)` reads it
without running any pickled code):

    model_class, model_config   "module:Class" names and the config's fields: enough to build the same network again
    weights                     the model's state_dict without the schedule, optionally stored in float16
    schedule                    the NoiseSchedule's class and its float32 tables: the betas its predictions assume
    train_config                the TrainConfig's fields, so a resumed run and a reader know how it was trained
    epoch, step, history        epochs and optimizer steps completed, and the logged losses (for the loss curve)
    optimizer, ema              Adam's moments and the weight average (its parameters and count), only in
                                checkpoints written to resume from

Every model is rebuilt the same way, `model_class(config, schedule)`, and every schedule as `schedule_class(betas)`;
the classes of the course's parts are passed in by the caller (yours or the reference's), never imported by name.

The noise schedule is stored apart from the weights on purpose: weights may be halved to float16 to keep a shipped
file small, while alpha_bar_T ~ 4e-5 would not survive float16's precision.
"""

import dataclasses
import importlib
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel

from utils import get_device
from utils.engine.model import DiffusionModel
from utils.engine.training import TrainConfig

FORMAT_VERSION = 1
SCHEDULE_PREFIX = "noise_schedule."


@dataclass
class Checkpoint:
    """What `load_checkpoint` gives back."""

    model: DiffusionModel  # in eval mode, on the device asked for, schedule attached; EMA weights if it had them
    train_config: TrainConfig | None  # how it was trained (None if the file did not say)
    epoch: int  # epochs of training behind it
    history: dict[str, list[tuple[int, float]]] = field(default_factory=dict)  # e.g. history["loss"]: (step, loss)


def class_path(obj_or_class) -> str:
    """The importable name "module:QualName" of a class (or of an object's class)."""
    cls = obj_or_class if isinstance(obj_or_class, type) else type(obj_or_class)
    return f"{cls.__module__}:{cls.__qualname__}"


def import_class(path: str) -> type:
    """The given class named by `class_path`. Only the given code's classes (`utils.*`) load by name: the course's
    parts are the caller's to choose (yours or the reference's), so a model or schedule of Parts 1-5 is passed in."""
    module_name, _, qualname = path.partition(":")
    if module_name.split(".")[0] in ("solutions", "exercises", "__main__"):
        raise ValueError(
            f"the checkpoint was saved from {path}: pass the class to rebuild it with, yours or the reference's, "
            "e.g. load_checkpoint(path, model_class=Unet, schedule_class=NoiseSchedule)"
        )
    if module_name.split(".")[0] != "utils":
        # Checkpoints load with weights_only=True so that a file cannot run code; importing any module it names
        # would undo that.
        raise ValueError(
            f"the checkpoint names the class {path}, outside this course's given code; if you trust it, pass the "
            "class itself, e.g. load_checkpoint(path, model_class=MyUnet)"
        )
    obj = importlib.import_module(module_name)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def save_checkpoint(
    path: str | Path,
    model: DiffusionModel,
    train_config: TrainConfig | None = None,
    *,
    optimizer: torch.optim.Optimizer | None = None,
    ema: AveragedModel | None = None,
    epoch: int = 0,
    step: int = 0,
    log=None,
    half: bool = False,
) -> Path:
    """Write `model` (trained: its `noise_schedule` is set) and what goes with it to `path`.

    Args:
        path: the file to write; its folder is created. Written to a temporary file first and then renamed, so an
            interrupted save never destroys the previous checkpoint.
        model: the DiffusionModel; if it has a dataclass `config`, its fields are saved to rebuild it.
        train_config: the TrainConfig it was trained with.
        optimizer, ema: include them to resume training later (they double or triple the file's size).
        epoch, step: how many epochs and optimizer steps of training the weights have seen.
        log: a RunLog whose scalar history (the loss curve) is saved along.
        half: store floating-point weights in float16, halving the file (the schedule stays float32).
    Returns:
        The path written.
    """
    schedule = model.noise_schedule
    if schedule is None:
        model.device  # noqa: B018  (raises, saying how to give a model one, unless it needs none: a flow model)
    config = getattr(model, "config", None)
    weights = _weights_of(model, half)
    state = {
        "format": FORMAT_VERSION,
        "model_class": class_path(model),
        "model_config": (
            {"class": class_path(config), "fields": dataclasses.asdict(config)}
            if dataclasses.is_dataclass(config)
            else None
        ),
        "image_shape": tuple(model.image_shape),
        "weights": weights,
        "schedule": {
            "class": class_path(schedule),
            "max_steps": len(schedule),
            "tables": {"betas": schedule.betas.detach().float().cpu()},
        }
        if schedule is not None
        else None,
        "train_config": dataclasses.asdict(train_config) if train_config is not None else None,
        "epoch": epoch,
        "step": step,
        "history": _history_to_tensors(log.history) if log is not None else {},
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "ema": {"n_averaged": int(ema.n_averaged), "weights": _weights_of(ema.module, half=False)}
        if ema is not None
        else None,
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    torch.save(state, partial)
    os.replace(partial, path)
    return path


def read_checkpoint(path: str | Path) -> dict:
    """The raw dict of a checkpoint file, with a clear error when the file is missing or not a checkpoint."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or state.get("format") != FORMAT_VERSION:
        raise ValueError(f"{path} is not a checkpoint written by utils.engine.checkpoints.save_checkpoint")
    return state


def load_checkpoint(
    path: str | Path,
    device: str | torch.device | None = None,
    model_class: type | None = None,
    schedule_class: type | None = None,
) -> Checkpoint:
    """Rebuild the saved model, ready to sample: weights (averaged ones if saved), schedule and config.

    Args:
        path: a file written by `save_checkpoint`.
        device: where to put the model; None picks CUDA, then MPS, then the CPU.
        model_class: the class to build, e.g. your own `Unet` or the reference's (needed unless the saved class is
            given code's); its module's config class of the saved name rebuilds the config.
        schedule_class: likewise for the NoiseSchedule (needed for a model saved with one).
    """
    state = read_checkpoint(path)
    device = get_device(device)
    model = build_model(state, model_class, schedule_class)
    load_weights(model, state["weights"])
    if state["ema"] is not None:  # a checkpoint written mid-training: its averaged weights are the ones to sample with
        load_weights(model, state["ema"]["weights"])
    model = model.to(device).eval()
    train_config = _dataclass_from(TrainConfig, state["train_config"]) if state["train_config"] else None
    history = _history_from_tensors(state["history"])
    return Checkpoint(model=model, train_config=train_config, epoch=state["epoch"], history=history)


def export_for_sampling(source: str | Path, destination: str | Path, half: bool = True) -> Path:
    """A small copy of a checkpoint that can sample but not resume: averaged weights (if any), float16 by default,
    no optimizer state. This is how `utils/weights/unet_fmnist_cpu.pt` was made from its training checkpoint."""
    state = read_checkpoint(source)
    if state["ema"] is not None:
        state["weights"] = state["ema"]["weights"]
    if half:
        state["weights"] = {
            name: value.half() if value.is_floating_point() else value for name, value in state["weights"].items()
        }
    state["optimizer"] = state["ema"] = None
    if state["train_config"] is not None:  # the run's own file paths mean nothing where the copy goes
        state["train_config"] = {**state["train_config"], "checkpoint_path": None, "resume_from": None}
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, destination)
    return destination


def resume_training(
    path: str | Path,
    model: DiffusionModel,
    optimizer: torch.optim.Optimizer,
    ema: AveragedModel | None = None,
    log=None,
) -> tuple[int, int]:
    """Put a saved run's weights, optimizer state and weight average back into a training run; used by `fit`.

    Args:
        path: a checkpoint written with an optimizer (`FitConfig.checkpoint_path` writes one every epoch).
        model: the model being trained, built with its schedule; it must have the saved layers and T.
        optimizer: the fresh optimizer over `model`'s parameters; its state is restored.
        ema: the run's EMA, if it keeps one; restored from the checkpoint's (or started at the loaded weights).
        log: the run's RunLog; the saved loss history is put back into it, if it has none yet.
    Returns:
        (epochs, steps) already done, where training continues.
    """
    state = read_checkpoint(path)
    if state["optimizer"] is None:
        raise ValueError(
            f"{path} holds no optimizer state, so training cannot continue from it exactly (it was saved for "
            "sampling only). Save checkpoints to resume from with FitConfig(checkpoint_path=...)."
        )
    saved_betas = state["schedule"]["tables"]["betas"] if state["schedule"] is not None else torch.zeros(0)
    own = model.noise_schedule
    own_betas = own.betas.detach().float().cpu() if own is not None else torch.zeros(0)
    if own_betas.shape != saved_betas.shape or not torch.allclose(own_betas, saved_betas):
        raise ValueError(
            f"{path} was trained with another noise schedule (T = {len(saved_betas)}, beta_T = "
            f"{saved_betas[-1]:.4g}) than this model's (T = {len(own_betas)}, beta_T = {own_betas[-1]:.4g}): "
            "build the model with the saved schedule to continue it"
        )
    load_weights(model, state["weights"])
    optimizer.load_state_dict(state["optimizer"])
    if ema is not None:
        # Without a saved average, the average starts again from the loaded weights.
        load_weights(ema.module, state["ema"]["weights"] if state["ema"] is not None else state["weights"])
        ema.n_averaged.fill_(state["ema"]["n_averaged"] if state["ema"] is not None else 1)
    if log is not None:  # the saved losses go in front, unless this log already holds them (a run resumed in chunks)
        for name, pairs in _history_from_tensors(state["history"]).items():
            if not log.history[name]:
                log.history[name].extend(pairs)
    return state["epoch"], state.get("step", 0)


def build_model(state: dict, model_class: type | None = None, schedule_class: type | None = None) -> DiffusionModel:
    """A freshly initialized model of the checkpoint's class and config, with its schedule (weights not loaded yet).

    The config is rebuilt with the class of the saved name that the model's own module (or a base class's) defines,
    so a student's Unet gets a UnetConfig it knows."""
    cls = model_class or import_class(state["model_class"])
    saved_config = state["model_config"]["class"]
    modules = [sys.modules.get(base.__module__) for base in cls.__mro__]
    config_cls = next(
        (getattr(m, saved_config.partition(":")[2]) for m in modules if hasattr(m, saved_config.partition(":")[2])),
        None,
    )
    config = _dataclass_from(config_cls or import_class(saved_config), state["model_config"]["fields"])
    return cls(config, build_schedule(state, schedule_class))


def build_schedule(state: dict, schedule_class: type | None = None) -> nn.Module:
    """The checkpoint's NoiseSchedule, built from its saved betas (with `schedule_class` if given); None for a model
    saved without one (a flow model)."""
    if state["schedule"] is None:
        return None
    return (schedule_class or import_class(state["schedule"]["class"]))(state["schedule"]["tables"]["betas"])


def _weights_of(model: nn.Module, half: bool) -> dict[str, Tensor]:
    """`model`'s state_dict on the CPU without the schedule's tables, floats optionally halved to float16."""
    return {
        name: (value.half() if half and value.is_floating_point() else value).detach().cpu()
        for name, value in model.state_dict().items()
        if not name.startswith(SCHEDULE_PREFIX)
    }


def load_weights(model: nn.Module, weights: dict[str, Tensor]) -> None:
    """Load saved weights (float16 or float32) into `model`'s own dtypes; the schedule's buffers are not among them."""
    own = model.state_dict()
    missing = [name for name in own if name not in weights and not name.startswith(SCHEDULE_PREFIX)]
    unexpected = [name for name in weights if name not in own]
    resized = [
        f"{name} {tuple(value.shape)} vs {tuple(own[name].shape)}"
        for name, value in weights.items()
        if name in own and value.shape != own[name].shape
    ]
    if missing or unexpected or resized:
        raise RuntimeError(
            f"the checkpoint does not fit this model: missing {missing[:3]}, unexpected {unexpected[:3]}, other "
            f"shapes (saved vs model) {resized[:3]}. Was it saved from a model with other layers or sizes?"
        )
    model.load_state_dict(weights, strict=False)


def _dataclass_from(cls: type, fields: dict):
    """`cls(**fields)`, skipping fields the class no longer has (a checkpoint from an older version still loads)."""
    known = {f.name for f in dataclasses.fields(cls)}
    return cls(**{name: value for name, value in fields.items() if name in known})


def _history_to_tensors(history: dict) -> dict[str, Tensor]:
    """Each logged series as one float64 tensor of shape (n, 2): (step, value) rows, compact and weights_only-safe."""
    return {name: torch.tensor(pairs, dtype=torch.float64).reshape(-1, 2) for name, pairs in history.items() if pairs}


def _history_from_tensors(history: dict[str, Tensor]) -> dict[str, list[tuple[int, float]]]:
    return {name: [(int(step), float(value)) for step, value in rows.tolist()] for name, rows in history.items()}
