"""What the graders of several parts share: inputs drawn from a generator of their own, small schedules and models
whose answers are known exactly (Part 4's graders reuse Part 1's noise schedule and sampler), and three checks that
hold every step to what the course will ask of it later, on a GPU and in the notebook's next section.

    StrictModel          the base of every stand-in model a grader hands to student code: like the course's U-Net,
                         it takes only images of its own dtype (float32) on its own device and a t (or s, with
                         time_kind = "float") that is a tensor of one value per image, and raises the error the U-Net
                         raises otherwise; graders.core names the likely mistake behind each. Its own parameters, if
                         it has any, must each reach its output (parameters_in_graph lists those that do not).
    schedule_with        the reference NoiseSchedule of some betas (a GraderSchedule), ready for the meta device:
                         there its lookups skip the range check of t, which reads values on the host (the CPU checks
                         make it).
    unchanged            `with unchanged("noise_img", img=img, noise_schedule=schedule): noise_img(img, schedule)`:
                         the grader keeps its own copy of each input (tensors, arrays, modules' state) and, after the
                         call, names the argument that changed. graders.core.call does this for every call it makes.
    run_on_meta          `run_on_meta(lambda: noise_img(img.to("meta"), schedule.to("meta")), "noise_img")` runs a
                         step on the meta device (shapes, dtypes and devices, no data), standing in for a GPU: a
                         tensor the step makes on the CPU meets the inputs there. It returns the step's result, or
                         NOT_ON_META when the step reads values on the host (.item(), .tolist(), .cpu(), numpy) or
                         uses an op without a meta kernel: then this check cannot tell, and the grader goes on with
                         its CPU checks. It fails, naming "made on the CPU: pass device=", when the step crashes on
                         two devices. Every correct implementation that the meta check cannot judge is registered
                         so in the proofs (`correct(..., unchecked_on_meta=True)`), and only those: none passes it
                         silently. A step that must end on the host (numpy statistics) is run with caller_judges=True,
                         and the grader reads what its stand-in recorded before. graders.core.call runs every module
                         it is given on meta too.
    expect_on_device     a result of such a run is on the inputs' device, or the failure says it was made on the CPU.
"""

import contextlib
import copy
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

from graders.core import expect, expect_subclass, fail
from solutions import part1 as ref
from utils.engine.model import DiffusionModel, as_step_tensor

# Large betas: with T = 6, alpha_bar falls from 0.9 to about 0.1, so alpha_bar_t and alpha_bar_{t+1} differ a lot.
BIG_BETAS = torch.tensor([0.1, 0.2, 0.3, 0.4, 0.5, 0.6])


class GraderSchedule(ref.NoiseSchedule):
    """The reference NoiseSchedule, able to run on the meta device: there its methods take t without the range check,
    which reads t's values on the host and a meta tensor has none. The graders check the range on the CPU."""

    def steps(self, t: int | Tensor) -> Tensor:
        if isinstance(t, Tensor) and "meta" in (t.device.type, self.betas.device.type):
            return as_step_tensor(t, self.betas.device)
        return super().steps(t)

    def _entry(self, table: Tensor, t: int | Tensor) -> Tensor:
        # On meta, a table indexed by a 0-d tensor asks for its value (.item()); an int indexes it directly.
        if isinstance(t, int) and table.device.type == "meta":
            return table[t - 1] if 1 <= t <= len(self) else table[self.steps(t)]
        return table[self.steps(t) - 1]

    def beta(self, t: int | Tensor) -> Tensor:
        return self._entry(self.betas, t)

    def alpha(self, t: int | Tensor) -> Tensor:
        return self._entry(self.alphas, t)

    def alpha_bar(self, t: int | Tensor) -> Tensor:
        return self._entry(self.alpha_bars, t)


def schedule_with(betas: Tensor) -> ref.NoiseSchedule:
    """The reference NoiseSchedule of `betas` (a GraderSchedule, so that it also runs on the meta device)."""
    return GraderSchedule(betas.clone())


def randn(*shape: int, seed: int) -> Tensor:
    """Grader inputs from a generator of their own, independent of any random draws the student's code makes."""
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


@dataclass(frozen=True)
class ShapeOnly:
    """The config of the graders' own small models: they need nothing but the image shape."""

    image_shape: tuple[int, int, int]


def moments(x: Tensor) -> tuple[float, float, float]:
    """Mean, variance and kurtosis (4th standardised moment; 3 for a Gaussian, 1.8 for a uniform) of all entries."""
    x = x.detach().double().flatten()
    mean = x.mean()
    var = x.var()
    kurtosis = ((x - mean) ** 4).mean() / var**2
    return mean.item(), var.item(), kurtosis.item()


def expect_diffusion_model(model, name: str, image_shape: tuple, likely: str | None = None) -> None:
    """`model`, built from the student's class `name`, is a DiffusionModel that kept config.image_shape."""
    expect_subclass(model, DiffusionModel, name, likely)
    expect(
        tuple(getattr(model, "image_shape", ())) == image_shape,
        f"{name} should keep config.image_shape.",
        str(image_shape),
        repr(getattr(model, "image_shape", None)),
        "call super().__init__(config, noise_schedule) first: sample() reads model.image_shape",
    )


# --------------------------------------------------------------------------------------------------------------------
# Stand-in models as strict as the course's own


_TYPE_NAMES = {
    torch.float64: "double",
    torch.float32: "float",
    torch.float16: "c10::Half",
    torch.bfloat16: "c10::BFloat16",
}


class StrictModel(DiffusionModel):
    """The base of the graders' stand-in models: they take their inputs only as the course's U-Net does.

    `model(images, t, ...)` checks, before its own forward runs, what the U-Net (or Part 1's TinyDiffuser) would
    trip over, and raises the error that network raises, so that code which passes a grader also runs in the course:

        t a Python number, not a tensor       AttributeError: 'int' object has no attribute 'to'
        images or t on another device         RuntimeError: Expected all tensors to be on the same device, ...
        images of another dtype (float64)     RuntimeError: Input type (double) and bias type (float) should be ...
        t of the wrong kind                   TypeError: time steps must be integers (1, ..., T); got a float tensor
        t not one value per image             ValueError: per_image expects one value per image, shape (B,); ...

    `time_kind` is "integer" for a t in {1, ..., T} (a long tensor, DDPM models) or "float" for Part 5's s or
    fractional t. The model's dtype is that of its first floating parameter, else `default_dtype` (float32); its device is
    `DiffusionModel.device`. A stand-in's own parameters must each reach its output, as the U-Net's do, so that a
    loss that loses the graph or a gradient that misses a weight shows (`parameters_in_graph` checks it).
    graders.core's crash messages name the likely mistake behind each of these errors.
    """

    time_kind: str = "integer"
    default_dtype: torch.dtype = torch.float32

    def __init__(self, config, noise_schedule: nn.Module | None = None):
        super().__init__(config, noise_schedule)
        self.register_forward_pre_hook(_as_the_unet_takes_them, with_kwargs=True)

    @property
    def input_dtype(self) -> torch.dtype:
        """The dtype of the images the model takes: that of its weights."""
        return next((p.dtype for p in self.parameters() if p.is_floating_point()), self.default_dtype)


def _as_the_unet_takes_them(model: StrictModel, args: tuple, kwargs: dict) -> None:
    """The forward pre-hook of every StrictModel: raise what the course's network raises on inputs it cannot take."""
    error = _unet_error(model, args, kwargs)
    if error is not None:
        error.from_stand_in = True  # run_on_meta lets it through: the step is wrong, not beyond the meta device
        raise error


def _unet_error(model: StrictModel, args: tuple, kwargs: dict) -> Exception | None:
    """The error the course's network would raise on these inputs, or None if it takes them."""
    rest = list(args) + [v for k, v in kwargs.items() if k != "labels"]
    images, t = (rest + [None, None])[:2]
    if not isinstance(images, Tensor):
        return TypeError(f"conv2d() received an invalid combination of arguments - got ({type(images).__name__}, ...)")
    if not isinstance(t, Tensor):
        return AttributeError(f"'{type(t).__name__}' object has no attribute 'to'")
    device = model.device
    for tensor in (images, t):
        if tensor.device != device:
            return RuntimeError(
                "Expected all tensors to be on the same device, but found at least two devices, "
                f"{device} and {tensor.device}!"
            )
    dtype = model.input_dtype
    if images.dtype != dtype:
        names = _TYPE_NAMES.get(images.dtype, str(images.dtype)), _TYPE_NAMES.get(dtype, str(dtype))
        return RuntimeError(f"Input type ({names[0]}) and bias type ({names[1]}) should be the same")
    if model.time_kind == "integer" and (t.is_floating_point() or t.is_complex() or t.dtype == torch.bool):
        return TypeError(f"time steps must be integers (1, ..., T); got a {t.dtype} tensor")
    if model.time_kind == "float" and not t.is_floating_point():
        return TypeError(f"s must be a float tensor, one time in [0, 1] per image; got a {t.dtype} tensor")
    if tuple(t.shape) != (images.shape[0],):
        return ValueError(
            f"per_image expects one value per image, shape ({images.shape[0]},); got shape {tuple(t.shape)}"
        )
    if tuple(images.shape[1:]) != tuple(model.image_shape):
        return RuntimeError(
            f"expected images of shape (B, {', '.join(map(str, model.image_shape))}); got {tuple(images.shape)}"
        )
    return None


def parameters_in_graph(model: nn.Module, output: Tensor) -> list[str]:
    """The names of `model`'s parameters that `output` does not depend on (a stand-in's should be none)."""
    params = dict(model.named_parameters())
    grads = torch.autograd.grad(output.sum(), list(params.values()), allow_unused=True)
    return [name for name, g in zip(params, grads, strict=True) if g is None]


# --------------------------------------------------------------------------------------------------------------------
# Inputs the step must leave as they were


def _kept(value):
    """The grader's own copy of an input: tensors cloned, a module's parameters and buffers as a state dict."""
    if isinstance(value, Tensor):
        return value.detach().clone()
    if isinstance(value, nn.Module):
        return {k: v.detach().clone() for k, v in value.state_dict().items()}
    return copy.deepcopy(value)


def _same(before, after) -> bool:
    if isinstance(before, Tensor):
        if not isinstance(after, Tensor) or before.shape != after.shape or before.dtype != after.dtype:
            return False
        return before.device.type == "meta" or torch.equal(before, after.detach().to(before.device))
    if isinstance(before, np.ndarray):
        return isinstance(after, np.ndarray) and np.array_equal(before, after)
    if isinstance(after, nn.Module):
        now = after.state_dict()
        return before.keys() == now.keys() and all(_same(v, now[k]) for k, v in before.items())
    try:
        return bool(before == after)
    except Exception:  # noqa: BLE001 - a value that cannot be compared is not judged
        return True


@contextlib.contextmanager
def unchanged(what: str, likely: str | None = None, **inputs) -> Iterator[None]:
    """Fail, after the block, if it changed any of `inputs` (name=value, as the step's signature names them), naming
    the argument and `likely` (by default, the ways of writing into a tensor).

    The grader keeps its own copy of each input before the call and hands over the originals, as the course does:
    a step that writes into its argument (x *= a, x.mul_(a), x[...] = ...) changes the caller's tensor, and the
    notebook's next cell, or the next training step, works on overwritten data.
    """
    kept = {name: _kept(value) for name, value in inputs.items()}
    yield
    for name, value in inputs.items():
        if not _same(kept[name], value):
            fail(
                f"{what} changed its argument `{name}` in place.",
                f"`{name}` as it was given",
                f"`{name}` overwritten",
                likely
                or f"write new tensors (y = x * a) instead of changing `{name}` (x *= a, x.mul_(a), x[...] = ..., "
                "x.clamp_(...)): the caller still needs it",
            )


# --------------------------------------------------------------------------------------------------------------------
# The meta device: a second device on a CPU-only machine


class _NotOnMeta(Exception):
    """Raised inside a step run on the meta device when it reads values on the host: a meta tensor has none."""


NOT_ON_META = object()  # what run_on_meta returns when the step cannot run on the meta device
_HOST_READS = {"cpu", "numpy", "tolist", "item", "__float__", "__int__", "__bool__", "__index__", "__array__"}
#: What each run_on_meta that could not judge its step met, in order ("noise_img: .item()"): the proofs read it.
UNCHECKED_ON_META: list[str] = []


class _HostReadsStop(TorchFunctionMode):
    """Stops a step at its first read of a meta tensor's values on the host (.cpu(), .item(), .tolist(), numpy, a
    Python number or truth value of a tensor), so that such a step is told apart from one that mixes two devices."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if args and isinstance(args[0], Tensor) and args[0].device.type == "meta":
            name = getattr(func, "__name__", "")
            to_cpu = name == "to" and any(
                (isinstance(a, (str, torch.device)) and torch.device(a).type == "cpu")
                or (isinstance(a, Tensor) and a.device.type == "cpu")
                for a in (*args[1:], kwargs.get("device"))
                if a is not None and not isinstance(a, torch.dtype)
            )
            if name in _HOST_READS or to_cpu:
                raise _NotOnMeta(f".{name}()" if not to_cpu else ".to('cpu')")
        return func(*args, **kwargs)


def run_on_meta(call: Callable[[], object], what: str, likely: str | None = None, caller_judges: bool = False):
    """`call()`, a student's step on inputs the grader put on the meta device, or NOT_ON_META when it cannot run there.

    The meta device stands in for a GPU on a CPU-only machine: a tensor the step makes without `device=` lands on the
    CPU and meets the meta inputs. A crash that names a device fails here, saying `what` crashed and naming `likely`
    (by default, a tensor made on the CPU). A step that reads values on the host, or uses an op without a meta
    kernel, cannot be judged here: its run is recorded in UNCHECKED_ON_META, for the proofs to see. With
    `caller_judges`, the step is expected to end on the host (numpy statistics, say) and the grader judges it by what
    its stand-in recorded on the way: a run that stops early is left for the grader to record.
    """
    try:
        with _HostReadsStop():
            return call()
    except _NotOnMeta as e:
        if not caller_judges:
            UNCHECKED_ON_META.append(f"{what}: {e}")
    except (RuntimeError, TypeError, ValueError, IndexError, NotImplementedError) as e:
        message = str(e)
        # "Cannot copy out of meta tensor" without a host read (those stop at _HostReadsStop): meta values written
        # into a tensor made on the CPU (cpu_tensor[...] = x)
        device_error = ("device" in message and "meta" in message and "numpy" not in message) or (
            "Cannot copy out of meta tensor" in message
        )
        if getattr(e, "from_stand_in", False) and not device_error:
            raise  # the stand-in model refused its inputs: the step is wrong, whatever the device
        if device_error:
            fail(
                f"{what} failed on inputs that are not on the CPU (here on the test device 'meta', as on a GPU).",
                "it to run on the device of its inputs",
                f"{type(e).__name__}: {message}",
                likely
                or "a tensor made on the CPU: pass device= (device=x.device, torch.randn_like(x), "
                "torch.full(..., device=x.device)) to every tensor you make",
            )
        if not caller_judges:
            UNCHECKED_ON_META.append(f"{what}: {type(e).__name__}: {message[:80]}")
    return NOT_ON_META


def expect_on_device(value, device: str | torch.device, what: str, likely: str | None = None) -> None:
    """`value` (a tensor) is on `device`, the device of the step's inputs; else say it was made on the CPU."""
    got = value.device if isinstance(value, Tensor) else None
    expect(
        got is not None and got.type == torch.device(device).type,
        f"{what} should be on the device of the inputs (here the test device '{torch.device(device).type}', as on "
        "a GPU).",
        f"a tensor on {torch.device(device).type}",
        f"a tensor on {got}" if got is not None else type(value).__name__,
        likely
        or f"{what} is made on the CPU: pass device= when you make it (device=x.device), or derive it from "
        "the inputs (torch.randn_like(x))",
    )


# --------------------------------------------------------------------------------------------------------------------
# Known models


class LinearNoisePredictor(StrictModel):
    """A known model for grading `sample`: eps_theta(x, t) = a_t x + b_t, with no parameters, strict about its inputs.

    Sampling with it is a linear Gaussian recursion, so the mean and the variance of every x_t are known exactly.
    It also records the t it is called with and whether gradients were on.
    """

    def __init__(self, schedule: nn.Module, image_shape=(1, 4, 4)):
        super().__init__(ShapeOnly(image_shape), schedule)
        T = len(schedule)
        # a[t - 1] is a_t; these keep x_0's variance small (0.22), so that the beta_1 of a wrongly noised last step
        # shows up clearly. Buffers, so that the model moves to another device (the meta device) whole.
        self.register_buffer("a", torch.linspace(1.0, 1.4, T), persistent=False)
        self.register_buffer("b", torch.linspace(0.5, -0.5, T), persistent=False)
        self.calls: list[Tensor] = []
        self.grad_enabled: list[bool] = []

    def forward(self, images: Tensor, num_steps: Tensor) -> Tensor:
        self.calls.append(num_steps.detach().clone())
        self.grad_enabled.append(torch.is_grad_enabled())
        index = num_steps.long() - 1
        return self.a[index].reshape(-1, 1, 1, 1) * images + self.b[index].reshape(-1, 1, 1, 1)

    def exact_moments(self, variant: str = "reference") -> list[tuple[float, float]]:
        """(mean, variance) of x_T, x_{T-1}, ..., x_0 under Algorithm 2, or under a named mistake."""
        s = self.noise_schedule
        T = len(s)
        mean, var = 0.0, 1.0
        moments_ = [(mean, var)]
        for t in range(T, 0, -1):
            beta, alpha = float(s.betas[t - 1]), float(s.alphas[t - 1])
            # "alpha_bar(t - 1)" reads alpha_bars[t - 2]: at t = 1 Python's index -1 wraps to alpha_bar_T, unless
            # it is clamped to alpha_bar_1
            index = {"alpha_bar(t - 1)": t - 2, "alpha_bar(t - 1), clamped": max(t - 2, 0)}.get(variant, t - 1)
            alpha_bar = float(s.alpha_bars[index])
            a, b = float(self.a[t - 1]), float(self.b[t - 1])
            k = beta / math.sqrt(1 - alpha_bar)
            scale = 1.0 if variant == "no division by sqrt(alpha_t)" else 1 / math.sqrt(alpha)
            c, d = scale * (1 - k * a), -scale * k * b
            noise_var = {"noise at t = 1": beta, "sigma = beta": beta**2, "no noise": 0.0}.get(variant, beta)
            if t == 1 and variant != "noise at t = 1":
                noise_var = 0.0
            mean, var = c * mean + d, c * c * var + noise_var
            moments_.append((mean, var))
        return moments_


def expect_runs_on_meta(what: str, fn: Callable, *args) -> None:
    """`fn(*args)` once more with every tensor and module of `args` on the meta device (a copy of each module): what it
    returns must be there too, as on a GPU. A step that cannot run on meta is recorded, as `run_on_meta` does."""
    moved = [
        a.to("meta") if isinstance(a, Tensor) else copy.deepcopy(a).to("meta") if isinstance(a, nn.Module) else a
        for a in args
    ]
    got = run_on_meta(lambda: fn(*moved), what)
    if got is not NOT_ON_META:
        for out in got if isinstance(got, tuple) else (got,):
            if isinstance(out, Tensor):
                expect_on_device(out, "meta", f"what {what} returns")
