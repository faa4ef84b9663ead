"""What every grader shares: failures that teach, tolerant comparisons, weight copying and loading a student's code.

A grader is a function `check_<step>(obj)` decorated with `@grader("<step>")`. It raises `GraderFailure` (an
`AssertionError`) with a message in three parts, what was expected, what came and the likely mistake, and prints one
line when the step passes. An untouched stub raises `NotImplementedError`, which becomes `NotImplementedYet`, a
one-line "not implemented yet" instead of a traceback. A step that runs past its time limit (`@grader(...,
time_limit=...)`, default DEFAULT_TIME_LIMIT_S) is stopped and becomes `TimedOut`, so an endless loop in a student's
code fails that step instead of hanging the notebook, pytest or a class's grading run.
"""

import contextlib
import copy
import functools
import inspect
import io
import math
import os
import signal
import sys
import threading
import time
import traceback
import types
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor, nn

from ddpm_course.impl import load_impl, load_notebook_definitions  # noqa: F401  (the graders' entry points)
from graders import REPO_ROOT

GRADERS_DIR = Path(__file__).resolve().parent


class GraderFailure(AssertionError):
    """A step is wrong. The message says what was expected, what came, and what to look at."""

    def _render_traceback_(self) -> list[str]:
        """What IPython shows for this error: the message alone, in red, instead of the graders' traceback.

        The cell still counts as failed, so "Run all" stops here and nbval reports it.
        """
        return [
            f"\x1b[31m\N{BALLOT X} {line}\x1b[0m" if i == 0 else line for i, line in enumerate(str(self).splitlines())
        ]


class NotImplementedYet(GraderFailure):
    """The step still raises the stub's NotImplementedError."""


class TimedOut(GraderFailure):
    """The step ran past its time limit and was stopped."""


# The time limit of a step, in seconds, unless its @grader says otherwise. The reference passes each small step in
# under a second on a 2-core CPU (a few seconds when the machine is busy), so this leaves a wide margin for a slower
# but correct solution, and still stops an endless loop within half a minute. Steps that train or sample, or run a
# whole network, give their own, longer limit.
DEFAULT_TIME_LIMIT_S = 30.0
# Every limit is multiplied by this variable when set (e.g. 3 on a very slow machine, 0.1 in a quick test).
TIME_LIMIT_SCALE_ENV = "DDPM_TIME_LIMIT_SCALE"


# --------------------------------------------------------------------------------------------------------------------
# Messages


def fmt(value, n: int = 6) -> str:
    """A short, readable rendering of a tensor (shape, dtype and its first values) or of any other value."""
    if isinstance(value, Tensor):
        flat = value.detach().flatten()
        if flat.is_floating_point():
            shown = ", ".join(f"{v:.4g}" for v in flat[:n].tolist())
        else:
            shown = ", ".join(str(v) for v in flat[:n].tolist())
        more = ", ..." if flat.numel() > n else ""
        return f"tensor of shape {tuple(value.shape)}, {value.dtype}: [{shown}{more}]"
    if isinstance(value, float):
        return f"{value:.6g}"
    return repr(value)


def fail(what: str, expected=None, got=None, likely: str | None = None) -> None:
    """Raise a GraderFailure: `what` went wrong, `expected` vs `got`, and the `likely` mistake."""
    lines = [what]
    if expected is not None:
        lines.append(f"  expected: {expected if isinstance(expected, str) else fmt(expected)}")
    if got is not None:
        lines.append(f"  got:      {got if isinstance(got, str) else fmt(got)}")
    if likely:
        lines.append(f"  likely mistake: {likely}")
    raise GraderFailure("\n".join(lines))


def expect(condition: bool, what: str, expected=None, got=None, likely: str | None = None) -> None:
    """`fail(...)` unless `condition` holds."""
    if not condition:
        fail(what, expected, got, likely)


def expect_pair(out, what: str, names: str) -> tuple:
    """`out`, after checking that `what` returned a pair, the two things `names` says ("x_s, v")."""
    expect(isinstance(out, tuple) and len(out) == 2, f"{what} should return a pair ({names}).", "a tuple of 2 tensors",
           type(out).__name__)  # fmt: skip
    return out


# --------------------------------------------------------------------------------------------------------------------
# Comparisons


def expect_tensor(
    value, what: str, shape: tuple | None = None, floating: bool | None = None, likely: str | None = None
) -> Tensor:
    """Check that `value` is a tensor (of `shape`, floating or integer as asked) and return it; `likely` names the
    mistake behind a wrong shape."""
    if not isinstance(value, Tensor):
        fail(f"{what} should be a torch.Tensor.", "a Tensor", f"{type(value).__name__}: {value!r:.80}")
    if shape is not None and tuple(value.shape) != tuple(shape):
        fail(f"{what} has the wrong shape.", f"shape {tuple(shape)}", f"shape {tuple(value.shape)}", likely)
    if floating is True and not value.is_floating_point():
        fail(f"{what} should hold floats.", "a floating-point dtype", str(value.dtype))
    if floating is False and (value.is_floating_point() or value.is_complex() or value.dtype == torch.bool):
        fail(
            f"{what} should hold integers.",
            "an integer dtype (torch.long)",
            str(value.dtype),
            "use torch.randint for step counts, or `.long()`",
        )
    return value


def expect_subclass(obj, base: type, name: str, likely: str | None = None) -> None:
    """`obj`, an instance of the student's class `name`, must be a `base`; the message names the class it subclasses."""
    if base is nn.Module:
        what, expected = f"{name} should be an nn.Module.", "a subclass of nn.Module"
    else:
        what, expected = f"{name} should subclass {base.__name__}.", f"class {name}({base.__name__})"
    expect(isinstance(obj, base), what, expected, type(obj).__mro__[1].__name__, likely)


def expect_dtype(value: Tensor, dtype: torch.dtype, what: str, likely: str | None = None) -> None:
    """`value` must have the dtype the docstring promises: a float64 that slips through here fails steps later,
    far from its cause (and a later step's hint would then point at the wrong thing)."""
    expect(
        value.dtype == dtype,
        f"{what} should be {dtype}, as the docstring says.",
        str(dtype),
        str(value.dtype),
        likely
        or "a float64 tensor on the way (numpy, torch.tensor of Python floats with dtype=torch.float64, or .double()): "
        "make new tensors like the inputs (torch.randn_like, dtype=x.dtype)",
    )


def matches(got: Tensor, expected: Tensor, atol: float, rtol: float) -> bool:
    """True when `got` and `expected` have one shape and agree within the tolerances."""
    return got.shape == expected.shape and torch.allclose(
        got.detach().double().cpu(), expected.detach().double().cpu(), atol=atol, rtol=rtol
    )


def expect_close(
    got,
    expected: Tensor,
    what: str,
    atol: float = 1e-5,
    rtol: float = 1e-4,
    likely: str | None = None,
    mistakes: dict[str, Tensor] | None = None,
) -> None:
    """Check `got` against the reference `expected`, naming a known mistake when `got` matches one.

    `mistakes` maps a description of a common error to the value that error produces: if the student's value equals
    one of them, the message names that error instead of the generic `likely`.
    """
    got = expect_tensor(got, what, shape=tuple(expected.shape))
    if not torch.isfinite(got).all() and torch.isfinite(expected).all():
        fail(f"{what} contains NaN or inf.", expected, got, "a division by zero, or sqrt/log of a negative number")
    if matches(got, expected, atol, rtol):
        return
    for description, wrong in (mistakes or {}).items():
        if matches(got, wrong, atol, rtol):
            fail(f"{what} does not match the reference.", expected, got, description)
    diff = (got.detach().double().cpu() - expected.detach().double().cpu()).abs()
    fail(
        f"{what} does not match the reference (largest difference {diff.max().item():.3g}, "
        f"allowed {atol:g} + {rtol:g}*|expected|).",
        expected,
        got,
        likely,
    )


def sampling_tolerance(std: float, n: int, sigmas: float = 6.0) -> float:
    """How far a mean of `n` independent draws with standard deviation `std` may stray: `sigmas` standard errors."""
    return sigmas * std / math.sqrt(n)


def var_tolerance(var: float, n: int) -> float:
    """How far a sample variance of `n` Gaussian draws with variance `var` may stray: six standard errors, where
    sd(var_hat) = var * sqrt(2 / (n - 1))."""
    return sampling_tolerance(var * math.sqrt(2), n - 1)


def expect_statistic(
    got: float,
    expected: float,
    tol: float,
    what: str,
    likely: str | None = None,
    mistakes: dict[str, float] | None = None,
) -> None:
    """Check a sample statistic against its exact value, allowing for sampling error `tol`.

    When `got` lies within `tol` of some `mistakes` values, the message names the nearest of those mistakes.
    """
    if math.isfinite(got) and abs(got - expected) <= tol:
        return
    near = [
        (abs(got - wrong), description) for description, wrong in (mistakes or {}).items() if abs(got - wrong) <= tol
    ]
    fail(what, f"{expected:.4f} (± {tol:.2g} for sampling error)", f"{got:.4f}", min(near)[1] if near else likely)


def call(what: str, fn, *args, likely: str | None = None):
    """Call the student's `fn`; turn a crash into a failure that says which call broke and what to look at.

    Every tensor it returns must have the dtype of its float inputs (float32 in Part 2, as every docstring promises):
    a float64 output would pass this step and break a later one, far from its cause. It must leave its tensor
    arguments as they were (in a U-Net, the skips are read again later). And a module (or a module's method) is
    run once more on the meta device, as on a GPU: what it returns must be on its inputs' device.
    """
    from graders.fixtures import NOT_ON_META, expect_on_device, run_on_meta, unchanged  # fixtures import this module

    names = _argument_names(fn, len(args))
    tensors = {name: a for name, a in zip(names, args, strict=True) if isinstance(a, Tensor)}
    try:
        with unchanged(what, **tensors):
            result = fn(*args)
    except (NotImplementedError, GraderFailure):
        raise
    except Exception as e:
        shapes = ", ".join(f"shape {tuple(a.shape)}" if isinstance(a, Tensor) else repr(a) for a in args)
        fail(f"{what} raised {type(e).__name__}: {e}", f"it to run on inputs of {shapes}", "an exception", likely)
    floats = [a.dtype for a in args if isinstance(a, Tensor) and a.is_floating_point()]
    for out in result if isinstance(result, tuple) else (result,):
        if floats and isinstance(out, Tensor) and out.is_floating_point() and out.dtype != floats[0]:
            fail(
                f"{what} returns {out.dtype}; it should keep the dtype of its input, {floats[0]}.",
                str(floats[0]),
                str(out.dtype),
                "a tensor made with dtype=torch.float64 (or from numpy, or torch.tensor of Python "
                "floats with float64 set) on the way: make new tensors with the input's dtype (dtype=x.dtype)",
            )
    module = fn if isinstance(fn, nn.Module) else getattr(fn, "__self__", None)
    # A module graded by the class-grading judge is a mirror of one in the worker, which the judge cannot move to
    # the meta device: there the check is not made (tests/test_remote.py lists the mistakes it then misses).
    if isinstance(module, nn.Module) and tensors and not is_judges_mirror(module):
        moved = copy.deepcopy(module).to("meta")
        method = moved if fn is module else getattr(moved, fn.__name__)
        meta_args = [a.detach().to("meta") if isinstance(a, Tensor) else a for a in args]
        made_on_cpu = (
            "a tensor made in forward on the CPU: pass device= (device=x.device, torch.zeros_like(x)), or keep a "
            "fixed tensor in a buffer (self.register_buffer), which .to(device) moves with the module"
        )
        on_meta = run_on_meta(lambda: method(*meta_args), what, made_on_cpu)
        if on_meta is not NOT_ON_META:
            for out in on_meta if isinstance(on_meta, tuple) else (on_meta,):
                if isinstance(out, Tensor):
                    expect_on_device(out, "meta", f"the output of {what}", made_on_cpu)
    return result


def is_judges_mirror(obj) -> bool:
    """Whether `obj` is the class-grading judge's stand-in for a student's module, class or function, which lives in
    the worker (graders/remote.py). The judge cannot move such an object to another device, nor hand it the
    device-tagged test tensors that do not survive the crossing: the device checks skip it."""
    return "_remote" in getattr(obj, "__dict__", {}) or "_remote_class" in getattr(obj, "__dict__", {})


def _argument_names(fn, n: int) -> list[str]:
    """The names of the first `n` parameters of `fn` (a module's forward's, for a module), or arg1, arg2, ..."""
    described = getattr(type(fn), "forward_names", None) if isinstance(fn, nn.Module) else None
    if described is not None and is_judges_mirror(fn):  # the judge's mirror: the names the worker read off forward
        return described[:n] if len(described) >= n else [f"arg{i + 1}" for i in range(n)]
    target = fn.forward if isinstance(fn, nn.Module) else fn
    try:
        parameters = [
            p.name
            for p in inspect.signature(target).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
    except (TypeError, ValueError):
        parameters = []
    return parameters[:n] if len(parameters) >= n else [f"arg{i + 1}" for i in range(n)]


# --------------------------------------------------------------------------------------------------------------------
# The grader decorator


def code_frames(tb) -> list[tuple[str, int, str, str]]:
    """(file, line, function, source) of each frame of a traceback outside the graders and torch, innermost last."""
    return [
        (f.filename, f.lineno, f.name, f.line or "")
        for f in traceback.extract_tb(tb)
        if GRADERS_DIR not in Path(f.filename).resolve().parents
        and "site-packages" not in f.filename
        and "/torch/" not in f.filename
    ]


def _student_frame(error: BaseException, obj=None) -> str:
    """Where the student's code broke: the innermost frame in the file `obj` (what was handed in) comes from, or else
    the innermost one outside the graders and torch. When the error was raised further in, in given or reference
    code, that place is named too, so that the student reads their own line first. An error that came from a worker
    (graders.remote) brings its frames along."""
    frames = getattr(error, "remote_frames", None) or code_frames(error.__traceback__)
    if not frames:
        return ""
    own_files = _files_of(obj)
    own = [f for f in frames if f[0] in own_files]
    f = own[-1] if own else frames[-1]
    where = f"\n  at {f[0]}:{f[1]}, in {f[2]}: {f[3]}".rstrip()
    if frames[-1] is not f:
        inner = frames[-1]
        where += f"\n  (raised inside given code: {_short(inner[0])}:{inner[1]}, in {inner[2]})"
    return where


def _files_of(obj) -> set[str]:
    """The source files of a function, or of every method of a class."""
    functions = [obj] if callable(obj) and hasattr(obj, "__code__") else []
    if isinstance(obj, type):
        functions = [v for k, v in vars(obj).items() if hasattr(v, "__code__")]
    functions = [inspect.unwrap(f) for f in functions]
    files = {f.__code__.co_filename for f in functions if hasattr(f, "__code__")}
    return files | set(getattr(obj, "source_files", ()))  # a submission's function or class in a worker


def _short(filename: str) -> str:
    path = Path(filename)
    return str(path.relative_to(REPO_ROOT)) if REPO_ROOT in path.resolve().parents else filename


#: Every grader, by the module that defines it and then by step: REGISTRY["graders.part1"]["noise_img"]. The proofs of
#: the graders (tests/proofs.py) read it, so a new step cannot go unproven.
REGISTRY: dict[str, dict[str, Callable]] = {}


def grader(
    step: str,
    expects: str = "function",
    time_limit: float | None = None,
    uses: tuple[str, ...] = (),
    one_thread: bool = False,
):
    """Make `check(obj, ...)` a grader of `step`: clear messages, a pass line, and a stub reported as a stub.

    `expects` is "function" or "class": what the student hands in. Passing something else (the result of calling
    the function, say) fails at once with a message saying how to call the grader. `time_limit` is how many seconds
    the whole check may take (default DEFAULT_TIME_LIMIT_S); past it the step fails with `TimedOut`. `uses` names
    earlier steps that `obj` calls by name: when this step fails, each of them that the student's own file defines
    is checked, and the first that fails its own check is named, since this failure may only follow from it.
    `one_thread` runs the check with torch on one CPU thread: on tiny tensors extra threads only wait for each other,
    and on a busy shared CPU that waiting made the U-Net's grader ten times slower. The thread count comes back after.
    """
    limit = DEFAULT_TIME_LIMIT_S if time_limit is None else time_limit

    def decorate(check: Callable) -> Callable:
        @functools.wraps(check)
        def run(obj=None, *args, **kwargs):
            _expect_kind(step, obj, expects, check.__name__)
            torch_state = torch.random.get_rng_state()
            seconds = limit * _time_limit_scale()
            try:
                run_with_time_limit(_on_one_thread(check) if one_thread else check, (obj, *args), kwargs, seconds)
            except _OutOfTime:
                raise TimedOut(_timed_out_message(step, seconds)) from None
            except NotImplementedYet:
                raise
            except GraderFailure as e:
                raise GraderFailure(f"{step}: {e}{_earlier_failure(obj, uses)}").with_traceback(None) from None
            except NotImplementedError as e:
                raise NotImplementedYet(
                    f"{step}: not implemented yet ({e or 'the stub raises NotImplementedError'}). "
                    "Fill in the stub, then run this check again."
                ) from None
            except Exception as e:  # the student's code broke: say where, without the graders' frames
                raise GraderFailure(
                    f"{step}: your code raised {type(e).__name__}: {e}{_student_frame(e, obj)}"
                    f"{_likely_crash_cause(e)}{_earlier_failure(obj, uses)}"
                ) from None
            finally:
                torch.random.set_rng_state(torch_state)
            print(f"\N{CHECK MARK} {step}: all checks passed")

        run.step = step
        run.time_limit = limit
        REGISTRY.setdefault(check.__module__, {})[step] = run
        return run

    return decorate


def _on_one_thread(check: Callable) -> Callable:
    """`check` run with torch on one CPU thread (in the thread that runs it), the thread count restored after."""

    @functools.wraps(check)
    def run(*args, **kwargs):
        before = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return check(*args, **kwargs)
        finally:
            torch.set_num_threads(before)

    return run


def _earlier_failure(obj, uses: tuple[str, ...]) -> str:
    """A line naming the first of the steps `uses` that the student's own code defines and that fails its own
    check, or "" when they all pass (or none is the student's)."""
    if not uses:
        return ""
    namespace = getattr(obj, "__globals__", None)
    if namespace is None:  # a class: the module it was defined in
        module = sys.modules.get(getattr(obj, "__module__", ""), None)
        namespace = vars(module) if module is not None else {}
    for name in uses:
        earlier = namespace.get(name)
        # the step's grader and reference, in whichever part it belongs to (Part 4's loss calls Part 1's noise_img)
        owner = next((module for module, steps in REGISTRY.items() if name in steps), None)
        reference = sys.modules.get(f"solutions.{(owner or '').rpartition('.')[2]}")
        if earlier is None or owner is None or earlier is getattr(reference, name, None):
            continue
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                REGISTRY[owner][name](earlier)
        except GraderFailure as e:
            lines = str(e).splitlines()
            first = lines[0].removeprefix(f"{name}: ").rstrip(".")
            likely = [line.strip().removeprefix("likely mistake: ") for line in lines if "likely mistake:" in line]
            return (
                f"\n  first: your `{name}`, which this step calls, fails its own check ({first}"
                f"{'; likely mistake: ' + likely[0] if likely else ''}); fix `{name}` first: this failure may only "
                "follow from it"
            )
    return ""


def _likely_crash_cause(error: Exception) -> str:
    """The likely mistake behind a crash whose cause is not the line it happened on."""
    message = str(error)
    if isinstance(error, IndexError) and "time steps run from 1 to T" in message:
        return (
            "\n  likely mistake: t out of range: t runs from 1 to T, both included (torch.randint(low, high) "
            "excludes high: torch.randint(1, T + 1, ...)); the tables' index is t - 1, but the schedule's methods "
            "take t itself"
        )
    if isinstance(error, StopIteration):
        return (
            "\n  likely mistake: next(model.parameters()) on a model without parameters (the graders use one). "
            "Take the device from the model's schedule: model.noise_schedule.betas.device"
        )
    if isinstance(error, AttributeError) and message in (
        "'int' object has no attribute 'to'",
        "'float' object has no attribute 'to'",
    ):
        return (
            "\n  likely mistake: t passed to the model as a Python number: the model takes a tensor of one t per "
            "image, shape (B,), on the images' device: torch.full((B,), t, device=x.device)"
        )
    if isinstance(error, TypeError) and message.startswith("time steps must be integers"):
        return (
            "\n  likely mistake: t passed to the model as floats: t counts steps, a long tensor (torch.randint, or "
            "torch.full((B,), t, dtype=torch.long, device=x.device))"
        )
    if isinstance(error, ValueError) and message.startswith("per_image expects one value per image"):
        return (
            "\n  likely mistake: t is not one value per image: the model takes t of shape (B,), one for each image "
            "of the batch (torch.full((B,), t, ...), not torch.tensor(t) or torch.tensor([t]))"
        )
    if isinstance(error, RuntimeError) and message.startswith("Input type (") and "should be the same" in message:
        return (
            "\n  likely mistake: images of another dtype than the model's weights (float64 where the model takes "
            "float32): a tensor made in float64 on the way (dtype=torch.float64, torch.tensor of numpy values, a "
            "float64 table or number turned into a tensor): keep the images' dtype (dtype=x.dtype)"
        )
    if isinstance(error, RuntimeError) and ("dtype" in message or "scalar type" in message):
        return (
            "\n  likely mistake: two tensors of different dtypes met (float32 and float64, say): a step before "
            "this one returns another dtype than its docstring promises; check each step's output dtype"
        )
    if (
        isinstance(error, RuntimeError)
        and "device" in message
        and ("same device" in message or "expected device" in message)
    ):
        return (
            "\n  likely mistake: tensors on two devices met: a tensor made on the CPU: pass device= to the tensors "
            "you make, the device of the ones you were given (device=x.device, or torch.randn_like(x))"
        )
    return ""


# --------------------------------------------------------------------------------------------------------------------
# Time limits


class _OutOfTime(BaseException):
    """Raised inside the student's code when the step's time is up. A BaseException, like KeyboardInterrupt, so that
    an `except Exception:` in the student's code cannot swallow it."""


def _time_limit_scale() -> float:
    raw = os.environ.get(TIME_LIMIT_SCALE_ENV, "").strip()
    try:
        return float(raw) if raw else 1.0
    except ValueError:
        raise ValueError(f"{TIME_LIMIT_SCALE_ENV}={raw!r}: expected a number, such as 2 or 0.5") from None


def _timed_out_message(step: str, seconds: float) -> str:
    return (
        f"{step}: stopped after {seconds:.3g} s, this step's time limit. The reference takes a small fraction of "
        "that on a laptop CPU.\n"
        "  likely mistake: a loop that never ends (a `while` whose condition never turns false, a loop variable that "
        "is never updated), or work far too large for the check: a huge model or hidden size, a T or a number of "
        "epochs taken from somewhere other than the config the grader passes, or a stray sleep or input().\n"
        f"  On a very slow machine, set {TIME_LIMIT_SCALE_ENV}=3 (say) to allow three times as long."
    )


def run_with_time_limit(function: Callable, args: tuple, kwargs: dict, seconds: float):
    """`function(*args, **kwargs)`, stopped with _OutOfTime once `seconds` have passed.

    On the main thread of a Unix process (Jupyter's kernel, pytest, a grading subprocess) a SIGALRM timer raises
    _OutOfTime inside the running code: the check really stops, and control comes back. Python delivers it between
    bytecodes, so one long call into C (a single enormous matrix product) is stopped only when it returns. A timer
    already running (an enclosing check's) is paused and re-armed with the time it had left.

    Elsewhere (Windows, or a call from another thread) there is no such timer: the call runs in a helper thread that
    is waited for `seconds`. Past that the step fails just the same, but the stuck code cannot be stopped and keeps
    running in the background until the process ends (in Jupyter: restart the kernel).
    """
    if hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread():
        return _with_alarm(function, args, kwargs, seconds)
    return _with_watchdog_thread(function, args, kwargs, seconds)


def _with_alarm(function: Callable, args: tuple, kwargs: dict, seconds: float):
    def out_of_time(signum, frame):
        raise _OutOfTime

    start = time.monotonic()
    previous_handler = signal.signal(signal.SIGALRM, out_of_time)
    # After the first alarm, one every second: code that swallows the first (a bare `except:` in a loop) gets another.
    previous_delay, previous_interval = signal.setitimer(signal.ITIMER_REAL, max(seconds, 1e-3), 1.0)
    try:
        return function(*args, **kwargs)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous_handler)
        if previous_delay > 0:  # give an enclosing timer back the time it had left (at least a tick)
            signal.setitimer(
                signal.ITIMER_REAL, max(previous_delay - (time.monotonic() - start), 1e-3), previous_interval
            )


def _with_watchdog_thread(function: Callable, args: tuple, kwargs: dict, seconds: float):
    outcome: dict = {}

    def target():
        try:
            outcome["value"] = function(*args, **kwargs)
        except BaseException as e:  # noqa: BLE001 - whatever it is, it is re-raised in the caller's thread
            outcome["error"] = e

    worker = threading.Thread(target=target, name="grader-step", daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        raise _OutOfTime
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


def _expect_kind(step: str, obj, expects: str, check_name: str) -> None:
    if expects == "class" and not inspect.isclass(obj):
        raise GraderFailure(
            f"{step}: {check_name} takes your class itself, e.g. {check_name}(MyClass); "
            f"got {type(obj).__name__}. Pass the class, not an instance or a result."
        )
    if expects == "function" and (inspect.isclass(obj) or not callable(obj)):
        raise GraderFailure(
            f"{step}: {check_name} takes your function itself, e.g. {check_name}({step}); "
            f"got {type(obj).__name__}. Pass the function, not the result of calling it."
        )


# --------------------------------------------------------------------------------------------------------------------
# Identical weights


def _trailing_ones_stripped(shape: torch.Size) -> tuple[int, ...]:
    dims = list(shape)
    while len(dims) > 2 and dims[-1] == 1:
        dims.pop()
    return tuple(dims)


def _shaped_like(ref_params: list, stu_params: list) -> list[tuple[str, Tensor]]:
    """The reference's (name, parameter) pairs, each viewed in its student counterpart's shape where only trailing 1s
    differ: a Linear's weight is (out, in); a Conv2d 1x1's is (out, in, 1, 1) and a Conv1d's (out, in, 1), the same
    numbers. Counterparts are found by name, or else by registration order."""
    stu_named = dict(stu_params)
    if {n for n, _ in ref_params} == set(stu_named):
        counterparts = [stu_named[n] for n, _ in ref_params]
    elif len(ref_params) == len(stu_params):
        counterparts = [sp for _, sp in stu_params]
    else:
        return ref_params  # copy_weights explains the mismatch
    return [
        (n, rp.reshape(sp.shape))
        if rp.shape != sp.shape and _trailing_ones_stripped(rp.shape) == _trailing_ones_stripped(sp.shape)
        else (n, rp)
        for (n, rp), sp in zip(ref_params, counterparts)
    ]


def copy_weights(reference: nn.Module, student: nn.Module, what: str) -> None:
    """Give `student` the parameters of `reference`, so that their outputs must agree exactly.

    Parameters are matched by name first; if the names differ, by registration order, with shapes checked one by one.
    A 1x1 convolution may stand in for a Linear layer, or back: their weights hold the same numbers.
    Buffers are not copied: a buffer the student computes (embedding frequencies, say) must be right by itself.
    """
    expect(
        hasattr(student, "named_parameters"),
        f"{what} should be an nn.Module.",
        "an nn.Module instance",
        type(student).__name__,
        "subclass nn.Module and call super().__init__() first",
    )
    stu_params = list(student.named_parameters())
    ref_params = _shaped_like(list(reference.named_parameters()), stu_params)
    ref_named = dict(ref_params)
    stu_named = dict(stu_params)
    if ref_named.keys() == stu_named.keys() and all(ref_named[k].shape == stu_named[k].shape for k in ref_named):
        pairs = [(stu_named[k], ref_named[k]) for k in ref_named]
    else:
        if len(ref_params) != len(stu_params):
            fail(
                f"{what} has {len(stu_params)} parameter tensors; the reference has {len(ref_params)}.",
                _param_table(ref_params),
                _param_table(stu_params),
                _count_hint(ref_params, stu_params),
            )
        for i, ((rn, rp), (sn, sp)) in enumerate(zip(ref_params, stu_params)):
            if rp.shape != sp.shape:
                fail(
                    f"{what}: parameter #{i} (registration order) has the wrong shape.",
                    f"{rn} with shape {tuple(rp.shape)}",
                    f"{sn} with shape {tuple(sp.shape)}",
                    "layers created in a different order than the reference, or a layer with other sizes "
                    "(in/out features, kernel size, bias). Full lists:\n"
                    f"    reference: {_param_table(ref_params)}\n    yours:     {_param_table(stu_params)}",
                )
        pairs = [(sp, rp) for (_, rp), (_, sp) in zip(ref_params, stu_params)]
    with torch.no_grad():
        for dst, src in pairs:
            dst.copy_(src)


def _param_table(params: list[tuple[str, Tensor]]) -> str:
    return "[" + ", ".join(f"{n} {tuple(p.shape)}" for n, p in params) + "]"


def _count_hint(ref: list, stu: list) -> str:
    ref_bias = sum(1 for n, _ in ref if n.endswith("bias"))
    stu_bias = sum(1 for n, _ in stu if n.endswith("bias"))
    if stu_bias < ref_bias:
        return "some layers have no bias: did you pass bias=False?"
    if len(stu) < len(ref):
        return "a layer is missing"
    return "an extra layer, or a layer with parameters where the reference has none"


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def implementation_of(module: types.ModuleType, name: str):
    """`module.name`, or a failure that says the student's file does not define it."""
    if not hasattr(module, name):
        where = getattr(module, "__file__", module.__name__)
        raise GraderFailure(f"{name}: {where} defines no `{name}`. Did you rename or delete it?")
    return getattr(module, name)
