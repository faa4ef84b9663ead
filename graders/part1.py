"""Graders for Part 1: the forward process, the noise schedule, the MLP denoiser, training and sampling.

Each `check_<step>` takes your function or class and compares it with the reference in `solutions/part1.py`.
Random steps are checked by the statistics of many draws against their exact values (with a tolerance of six
standard errors), so any correct way of drawing the noise passes. Schedules with large betas make an off-by-one in
t show up clearly. Where a common mistake gives a recognisable answer, the failure names it.
"""

import copy
import math
from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from graders.arithmetic import alpha_bar_after, eps_of, posterior_of, x_t_of
from graders.core import (
    call,
    copy_weights,
    expect,
    expect_close,
    expect_dtype,
    expect_pair,
    expect_statistic,
    expect_subclass,
    expect_tensor,
    fail,
    fmt,
    grader,
    is_judges_mirror,
    n_params,
    sampling_tolerance,
    var_tolerance,
)
from graders.fixtures import (
    BIG_BETAS,
    NOT_ON_META,
    UNCHECKED_ON_META,
    LinearNoisePredictor,
    ShapeOnly,
    StrictModel,
    expect_diffusion_model,
    expect_on_device,
    expect_runs_on_meta,
    moments,
    run_on_meta,
    schedule_with,
    unchanged,
)
from solutions import part1 as ref
from utils.datasets.images import gradient_images
from utils.engine.model import DiffusionModel, normalize_img
from utils.engine.training import RunLog, TrainConfig

# --------------------------------------------------------------------------------------------------------------------


@grader("linear_schedule")
def check_linear_schedule(linear_schedule) -> None:
    betas = expect_tensor(linear_schedule(10), "linear_schedule(10)", shape=(10,), floating=True)
    expect(
        betas.dtype == torch.float32,
        "linear_schedule(10) should be float32, torch's default float dtype.",
        "torch.float32",
        str(betas.dtype),
        "a float64 table would turn every image it touches into float64",
    )
    expected = torch.linspace(1e-4, 0.02, 10)
    expect_close(
        betas,
        expected,
        "linear_schedule(10)",
        atol=1e-7,
        rtol=1e-5,
        likely="beta_1 = min_noise and beta_T = max_noise, evenly spaced in between (torch.linspace)",
        mistakes={
            "the schedule is reversed: noise should grow with t, from min_noise to max_noise": expected.flip(0),
            "T + 1 points with the last dropped: linspace(min, max, T) already has T points": torch.linspace(
                1e-4, 0.02, 11
            )[:-1],
            "T + 1 points with the first dropped: linspace(min, max, T) already has T points": torch.linspace(
                1e-4, 0.02, 11
            )[1:],
        },
    )
    custom = linear_schedule(4, 0.1, 0.4)
    expect_close(
        custom,
        torch.tensor([0.1, 0.2, 0.3, 0.4]),
        "linear_schedule(4, min_noise=0.1, max_noise=0.4)",
        atol=1e-6,
        likely="min_noise and max_noise are ignored: use the arguments, not fixed numbers",
    )
    long = linear_schedule(1000)
    expect(
        abs(long[0].item() - 1e-4) < 1e-9 and abs(long[-1].item() - 0.02) < 1e-9,
        "linear_schedule(1000) should start at 1e-4 and end at 0.02 (the DDPM paper's values).",
        "beta_1 = 0.0001, beta_T = 0.02",
        f"beta_1 = {long[0].item():.6g}, beta_T = {long[-1].item():.6g}",
    )


# --------------------------------------------------------------------------------------------------------------------


def _check_forward_process(q, name: str, loop: bool) -> None:
    """Shared by q_eq2 and q_eq4: both must give x_t ~ N(sqrt(alpha_bar_t) x_0, (1 - alpha_bar_t) I)."""
    torch.manual_seed(0)
    betas = BIG_BETAS.clone()
    # 200,000 pixels, half at +1 and half at -1, so the slope of x_t on x_0 and the noise are both measurable.
    x = torch.cat([torch.ones(100_000), -torch.ones(100_000)]).reshape(400, 500)
    n = x.numel()

    for steps in (1, 3, 6):
        with unchanged(name, x=x, betas=betas):
            out = q(x, steps, betas)
        expect_tensor(out, f"{name}(x, {steps}, betas)", shape=tuple(x.shape), floating=True)
        expect_dtype(out, x.dtype, f"{name}(x, {steps}, betas) for a float32 x")
        alpha_bar = alpha_bar_after(betas, steps)
        # Fit x_t = slope * x_0 + residual: the slope is sqrt(alpha_bar_t), the residual is N(0, 1 - alpha_bar_t).
        slope = ((out[:200].mean() - out[200:].mean()) / 2).item()
        residual = out - slope * x
        mean, var, kurtosis = moments(residual)
        what = f"{name}(x, {steps}, betas) with betas = {[round(b, 2) for b in betas.tolist()]}"
        expect_statistic(
            slope,
            math.sqrt(alpha_bar),
            sampling_tolerance(math.sqrt(1 - alpha_bar), n),
            f"{what}: how much of x_0 is left, the factor sqrt(alpha_bar_t) in front of x_0, is off.",
            "x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps, with alpha_bar_t the product of the first t alphas",
            mistakes={
                f"off by one step: you applied {steps + 1} steps (alpha_bar_{steps + 1})": math.sqrt(
                    alpha_bar_after(betas, steps + 1)
                ),
                f"off by one step: you applied {steps - 1} steps (alpha_bar_{steps - 1})": math.sqrt(
                    alpha_bar_after(betas, steps - 1)
                ),
                "x_0 is scaled by sqrt(alpha_t) of the last step only, not sqrt(alpha_bar_t)": math.sqrt(
                    1 - betas[steps - 1].item()
                ),
                "x_0 is scaled by alpha_bar_t, not its square root": alpha_bar,
            },
        )
        expect_statistic(
            mean,
            0.0,
            sampling_tolerance(math.sqrt(1 - alpha_bar), n),
            f"{what}: the noise should have mean 0.",
            "torch.rand draws from U(0, 1), mean 0.5: Gaussian noise is torch.randn / randn_like",
        )
        wrong_vars = {
            f"off by one step: the noise of {steps + 1} steps": 1 - alpha_bar_after(betas, steps + 1),
            f"off by one step: the noise of {steps - 1} steps": 1 - alpha_bar_after(betas, steps - 1),
            "uniform noise scaled to [-1, 1]: Gaussian noise is torch.randn / randn_like": (1 - alpha_bar) / 3,
        }
        if loop:
            wrong_vars[
                "beta used as a standard deviation: the noise is sqrt(beta_t) * eps, since beta_t is a variance"
            ] = _beta_as_std_var(betas, steps)
            wrong_vars["one noise tensor reused at every step: draw fresh noise inside the loop"] = _same_noise_var(
                betas, steps
            )
        else:
            wrong_vars["variance and standard deviation mixed up: the noise is sqrt(1 - alpha_bar) * eps"] = (
                1 - alpha_bar
            ) ** 2
        expect_statistic(
            var,
            1 - alpha_bar,
            var_tolerance(1 - alpha_bar, n),
            f"{what}: the variance of the noise in x_t should be 1 - alpha_bar_t.",
            "x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps, eps ~ N(0, I)",
            mistakes=wrong_vars,
        )
        expect_statistic(
            kurtosis,
            3.0,
            0.1,
            f"{what}: the noise should be Gaussian (kurtosis 3).",
            "the noise is not Gaussian: use torch.randn / randn_like, not torch.rand",
            mistakes={"uniform noise (kurtosis 1.8): use torch.randn / randn_like, not torch.rand": 1.8},
        )
    same = q(x, 0, betas)
    expect_tensor(same, f"{name}(x, 0, betas)", shape=tuple(x.shape), floating=True)
    expect_close(
        same,
        x,
        f"{name}(x, 0, betas), zero steps of noise",
        atol=1e-6,
        likely="with num_steps = 0 the image comes back unchanged; alpha_bar_0 = 1 (the empty product)."
        + ("" if loop else " Note that alpha_bars[num_steps - 1] wraps around to the last entry at 0."),
    )
    again = q(x, 3, betas)
    expect(
        not torch.equal(again, q(x, 3, betas)),
        f"{name} gave the same output twice: it should draw new noise on every call.",
        likely="a fixed seed (torch.manual_seed) inside the function, or noise created once outside it",
    )


def _beta_as_std_var(betas: Tensor, steps: int) -> float:
    var = 0.0
    for beta in betas[:steps].double().tolist():
        var = (1 - beta) * var + beta**2
    return var


def _same_noise_var(betas: Tensor, steps: int) -> float:
    # x_t = prod(sqrt(alpha)) x_0 + (sum_k sqrt(beta_k) prod_{j>k} sqrt(alpha_j)) eps: the coefficients add, not their squares.
    total = 0.0
    for beta in betas[:steps].double().tolist():
        total = math.sqrt(1 - beta) * total + math.sqrt(beta)
    return total**2


@grader("q_eq2")
def check_q_eq2(q_eq2) -> None:
    _check_forward_process(q_eq2, "q_eq2", loop=True)


@grader("q_eq4")
def check_q_eq4(q_eq4) -> None:
    _check_forward_process(q_eq4, "q_eq4", loop=False)


# --------------------------------------------------------------------------------------------------------------------


@grader("NoiseSchedule", expects="class", time_limit=60)  # statistics over many draws
def check_noise_schedule(NoiseSchedule) -> None:
    linear = ref.linear_schedule(10)
    given = linear.clone()
    with unchanged("NoiseSchedule(betas)", betas=given):
        schedule = NoiseSchedule(given)
    what = "NoiseSchedule(linear_schedule(10))"
    expect_subclass(schedule, nn.Module, "NoiseSchedule", "class NoiseSchedule(nn.Module) and super().__init__() first")
    reference = ref.NoiseSchedule(linear.clone())
    buffers = dict(schedule.named_buffers())
    for name in ("betas", "alphas", "alpha_bars"):
        if name not in buffers:
            plain = isinstance(getattr(schedule, name, None), Tensor)
            fail(
                f"NoiseSchedule has no buffer named {name!r}.",
                "buffers betas, alphas, alpha_bars",
                f"buffers {sorted(buffers) or 'none'}",
                f"self.{name} is a plain attribute: it is not saved in state_dict() and .to() does not move it. "
                f'Use self.register_buffer("{name}", ...)'
                if plain
                else f'register it with self.register_buffer("{name}", tensor)',
            )
    for name in ("betas", "alphas", "alpha_bars"):
        expect(
            buffers[name].dtype == torch.float32,
            f"{what}.{name} should be float32, the dtype of the betas.",
            "torch.float32",
            str(buffers[name].dtype),
            "build the tables from the betas, in their dtype",
        )
    cumsum = torch.cumsum(reference.alphas, 0)
    shifted = torch.cat([torch.ones(1), reference.alpha_bars[:-1]])
    expect_close(
        schedule.betas,
        reference.betas,
        f"{what}.betas",
        atol=1e-7,
        likely="betas is the tensor passed in, stored as it is",
        mistakes={"the betas are reversed": reference.betas.flip(0)},
    )
    expect_close(
        schedule.alphas,
        reference.alphas,
        f"{what}.alphas",
        atol=1e-7,
        likely="alpha_t = 1 - beta_t",
        mistakes={"alphas hold sqrt(1 - beta_t): store alpha_t = 1 - beta_t itself": reference.alphas.sqrt()},
    )
    expect_close(
        schedule.alpha_bars,
        reference.alpha_bars,
        f"{what}.alpha_bars",
        atol=1e-7,
        likely="alpha_bar_t = alpha_1 * ... * alpha_t: torch.cumprod(alphas, dim=0)",
        mistakes={
            "off by one: alpha_bars starts at 1 (alpha_bar_0). Entry t - 1 must hold alpha_bar_t, so "
            "alpha_bars[0] = alpha_1 = 0.9999": shifted,
            "a cumulative sum: alpha_bar is a product, torch.cumprod": cumsum,
        },
    )
    expect(len(schedule) == 10, f"len({what}) should be T = 10.", "10", str(len(schedule)))

    for method in ("beta", "alpha", "alpha_bar"):
        table = getattr(reference, method + "s")  # betas, alphas, alpha_bars
        for t in (1, 4, 10):
            try:
                value = getattr(schedule, method)(t)
            except IndexError:
                fail(
                    f"NoiseSchedule.{method}({t}) raised IndexError.",
                    f"{method}_{t}, entry {t - 1} of the table",
                    "IndexError",
                    "t runs over 1..T, so step t sits at index t - 1, and t = T is valid",
                )
            expect_close(
                torch.as_tensor(value).float().reshape(()),
                table[t - 1],
                f"NoiseSchedule.{method}({t})",
                atol=1e-7,
                mistakes={
                    f"off by one: {method}(t) returned the entry of step t + 1; step t is at index t - 1": table[
                        min(t, 9)
                    ]
                }
                if t < 10
                else None,
                likely=f"{method}(t) for t in 1..T is entry t - 1 of the table",
            )
        t = torch.tensor([1, 5, 10, 3])
        with unchanged(f"NoiseSchedule.{method}(t)", t=t):
            values = getattr(schedule, method)(t)
        expect_close(
            values,
            table[t - 1],
            f"NoiseSchedule.{method}(tensor([1, 5, 10, 3]))",
            atol=1e-7,
            likely="index the table with the tensor: table[t - 1] gives one value per t, shape (B,)",
        )
    expect(
        abs(float(schedule.alpha_bar(1)) - 0.9999) < 1e-7,
        "alpha_bar(1) should be alpha_1 = 1 - 1e-4 = 0.9999.",
        "0.9999",
        f"{float(schedule.alpha_bar(1)):.7f}",
    )

    # Any betas, not only the linear ones: large ones, a float64 table, and tables on the betas' device.
    big = NoiseSchedule(BIG_BETAS.clone())
    expect(
        len(big) == 6,
        f"len(NoiseSchedule(betas)) should be the number of betas, {len(BIG_BETAS)}.",
        "6",
        str(len(big)),
        "T is len(betas): do not build a linear schedule of your own",
    )
    expect_close(
        big.alpha_bars,
        torch.cumprod(1 - BIG_BETAS, 0),
        "NoiseSchedule(tensor([0.1, ..., 0.6])).alpha_bars",
        atol=1e-6,
        likely="build the tables from the betas passed in, whatever they are",
        mistakes={
            "the betas passed in are ignored: a linear schedule was built instead": ref.NoiseSchedule(
                ref.linear_schedule(6)
            ).alpha_bars
        },
    )
    doubled = NoiseSchedule(BIG_BETAS.double())
    expect(
        doubled.alpha_bars.dtype == torch.float64,
        "NoiseSchedule(float64 betas) should keep float64 tables.",
        "float64 alpha_bars",
        str(doubled.alpha_bars.dtype),
        "the tables are made in another dtype than the betas'",
    )
    moved = NoiseSchedule(linear.clone()).to(torch.float64)
    expect(
        moved.alpha_bars.dtype == torch.float64,
        f"{what}.to(torch.float64) should convert its tables.",
        "float64 buffers",
        str(moved.alpha_bars.dtype),
        "the tables are not registered buffers",
    )
    # The device check needs a device other than the CPU. A real meta tensor has no data, so a schedule whose tables
    # go through Python or numpy values (.tolist(), .numpy()) cannot be built from one: it gets CPU betas that say
    # they are on "meta" instead, so that `device=betas.device` and `.to(betas.device)` are followed and seen. Their
    # .cpu() gives a plain CPU tensor, as on a GPU: tables built from it are seen on the CPU unless brought back.
    on_meta = None
    _OnMeta.copied_to_cpu = False
    tagged = torch.linspace(1e-4, 0.02, 4).as_subclass(_OnMeta)
    # the judge's class lives in the worker, and tagged betas cross to it as plain CPU tensors: real meta ones only
    for betas in (torch.linspace(1e-4, 0.02, 4, device="meta"), *([] if is_judges_mirror(NoiseSchedule) else [tagged])):
        try:
            on_meta = NoiseSchedule(betas)
            break
        except Exception as e:  # noqa: BLE001 - an op without a meta kernel: try the next way, else check on the CPU only
            failure = f"NoiseSchedule: {type(e).__name__}: {str(e)[:80]}"
            continue
    if on_meta is None:
        UNCHECKED_ON_META.append(failure)
        return
    for table in ("betas", "alphas", "alpha_bars"):
        device = getattr(on_meta, table).device
        expect(
            device.type == "meta",
            f"NoiseSchedule(betas) should build its tables on the betas' device; {table} is not.",
            "buffers on the betas' device (here the test device 'meta')",
            f"{table} on {device}",
            "the tables are made on the CPU: .cpu() moved the betas there, and the tables stayed; on a GPU, "
            "compute them from the betas with torch ops (1 - betas, torch.cumprod), or bring them back with "
            ".to(betas.device)"
            if _OnMeta.copied_to_cpu
            else "the tables are made on the CPU: compute them from the betas with torch ops (1 - betas, "
            "torch.cumprod), or pass device=betas.device to a tensor you make from Python or numpy values",
        )


class _OnMeta(torch.Tensor):
    """CPU data that says it is on the meta device: lets the device check follow a schedule built through numpy.
    Its .cpu() (or .to("cpu")) gives a plain CPU tensor, and says so in `copied_to_cpu`."""

    copied_to_cpu = False

    @property
    def device(self) -> torch.device:
        return torch.device("meta")

    def cpu(self, *args, **kwargs) -> Tensor:
        _OnMeta.copied_to_cpu = True
        return self.as_subclass(Tensor).clone()

    def to(self, *args, **kwargs) -> Tensor:
        target = kwargs.get("device", args[0] if args else None)
        if isinstance(target, (str, torch.device)) and torch.device(target).type == "cpu":
            return self.cpu()
        return super().to(*args, **kwargs)


# --------------------------------------------------------------------------------------------------------------------


@grader("noise_img")
def check_noise_img(noise_img) -> None:
    torch.manual_seed(0)
    schedule = schedule_with(BIG_BETAS)
    T = len(schedule)
    generator = torch.Generator().manual_seed(1)
    img = torch.rand(6000, 1, 2, 2, generator=generator) * 2 - 1
    with unchanged("noise_img", img=img, noise_schedule=schedule):
        result = noise_img(img, schedule)
    expect(
        isinstance(result, tuple) and len(result) == 3,
        "noise_img should return three things.",
        "(num_steps, noise, noised)",
        f"{type(result).__name__} of length {len(result) if hasattr(result, '__len__') else '?'}",
    )
    num_steps, noise, noised = result
    expect_tensor(num_steps, "num_steps (the first thing returned)", shape=(6000,), floating=False)
    expect_tensor(noise, "noise (the second thing returned)", shape=tuple(img.shape), floating=True)
    expect_tensor(noised, "noised (the third thing returned)", shape=tuple(img.shape), floating=True)
    expect_dtype(noise, img.dtype, "noise, for float32 images")
    expect_dtype(noised, img.dtype, "noised, for float32 images")

    lo, hi = int(num_steps.min()), int(num_steps.max())
    expect(
        lo >= 1,
        "t should never be 0: t counts steps of noise, from 1 to T.",
        "t in {1, ..., T}",
        f"smallest t = {lo}",
        "torch.randint(0, T, ...) gives 0..T-1; use torch.randint(1, T + 1, ...)",
    )
    expect(hi <= T, f"t should never exceed T = {T}.", f"t in {{1, ..., {T}}}", f"largest t = {hi}")
    expect(
        hi == T,
        f"t never reached T = {T} in 6000 draws.",
        f"t in {{1, ..., {T}}}, T included",
        f"largest t = {hi}",
        "torch.randint's upper bound is exclusive: torch.randint(1, T + 1, ...)",
    )
    counts = torch.bincount(num_steps, minlength=T + 1)[1:].double()
    p = 1 / T
    expect(
        bool(((counts / 6000 - p).abs() <= sampling_tolerance(math.sqrt(p * (1 - p)), 6000)).all()),
        "t should be uniform over {1, ..., T}.",
        f"about {6000 * p:.0f} of each",
        str(counts.long().tolist()),
        "draw t with torch.randint, one per image",
    )

    mean, var, kurtosis = moments(noise)
    n = noise.numel()
    expect_statistic(
        mean,
        0.0,
        6 / math.sqrt(n),
        "the noise should have mean 0.",
        mistakes={"uniform noise from torch.rand (mean 0.5): use torch.randn_like": 0.5},
    )
    expect_statistic(
        var,
        1.0,
        var_tolerance(1.0, n),
        "the returned noise should be standard Gaussian, variance 1.",
        "return the unscaled noise eps, not sqrt(1 - alpha_bar) * eps: eps is what the model learns to predict",
        mistakes={
            "uniform noise: use torch.randn_like, not torch.rand_like": 1 / 12,
            "uniform noise in [-1, 1]: use torch.randn_like": 1 / 3,
        },
    )
    expect_statistic(
        kurtosis,
        3.0,
        0.15,
        "the noise should be Gaussian (kurtosis 3).",
        mistakes={"uniform noise: use torch.randn_like, not torch.rand_like": 1.8},
    )

    alpha_bar = schedule.alpha_bars[num_steps - 1].reshape(-1, 1, 1, 1)
    expected = x_t_of(img, noise, alpha_bar)
    shifted = schedule.alpha_bars[num_steps.clamp(max=T - 1)].reshape(-1, 1, 1, 1)
    alpha_only = schedule.alphas[num_steps - 1].reshape(-1, 1, 1, 1)
    expect_close(
        noised,
        expected,
        "noised, compared with sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps from your t and eps",
        atol=1e-5,
        likely="eq. 4 with alpha_bar_t of each image's own t, broadcast over (C, H, W)",
        mistakes={
            "off by one: alpha_bar_{t+1} used; step t is at index t - 1 (noise_schedule.alpha_bar(t) does this)": torch.where(
                num_steps.reshape(-1, 1, 1, 1) < T, x_t_of(img, noise, shifted), expected
            ),
            "alpha_t used where eq. 4 needs alpha_bar_t": x_t_of(img, noise, alpha_only),
            "variances used as scales: x_t = sqrt(alpha_bar) x_0 + sqrt(1 - alpha_bar) eps takes square roots": alpha_bar
            * img
            + (1 - alpha_bar) * noise,
        },
    )
    limited, _, _ = noise_img(img, schedule, max_steps=3)
    expect(
        int(limited.min()) >= 1 and int(limited.max()) == 3,
        "noise_img(img, schedule, max_steps=3) should draw t from {1, 2, 3}.",
        "t from 1 to 3",
        f"t from {int(limited.min())} to {int(limited.max())}",
        "use max_steps when it is given, else len(noise_schedule)",
    )
    # On a GPU, training hands noise_img images that live there: what it returns must live there too.
    on_meta = run_on_meta(lambda: noise_img(img[:8].to("meta"), schedule_with(BIG_BETAS).to("meta")), "noise_img")
    if on_meta is not NOT_ON_META:
        for name, value, likely in zip(
            ("num_steps", "noise", "noised"),
            on_meta,
            (
                "num_steps is made on the CPU: pass device=img.device to torch.randint",
                "the noise is made on the CPU: pass device=img.device to torch.randn, or use torch.randn_like(img)",
                "noised is made on the CPU: pass device= to the tensors it is made from",
            ),
            strict=True,
        ):
            expect_on_device(value, "meta", f"{name} (returned by noise_img)", likely)


# --------------------------------------------------------------------------------------------------------------------


@grader("reconstruct")
def check_reconstruct(reconstruct) -> None:
    generator = torch.Generator().manual_seed(2)
    schedule = schedule_with(BIG_BETAS)
    x_0 = torch.rand(16, 3, 4, 4, generator=generator) * 2 - 1
    noise = torch.randn(16, 3, 4, 4, generator=generator)
    t = torch.randint(1, 7, (16,), generator=generator)
    t[:2] = torch.tensor([1, 6])
    alpha_bar = schedule.alpha_bars[t - 1].reshape(-1, 1, 1, 1)
    x_t = x_t_of(x_0, noise, alpha_bar)
    with unchanged("reconstruct", noisy_img=x_t, noise=noise, num_steps=t, noise_schedule=schedule):
        got = reconstruct(x_t, noise, t, schedule)
    expect_tensor(got, "reconstruct(x_t, eps, t, schedule)", shape=tuple(x_0.shape), floating=True)
    expect_dtype(got, x_t.dtype, "reconstruct(x_t, eps, t, schedule) for float32 x_t")
    expect_close(
        got,
        x_0,
        "reconstruct(x_t, eps, t, schedule) should give back x_0",
        atol=1e-4,
        likely="x_0 = (x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t), with each image's own t",
        mistakes={
            "the division by sqrt(alpha_bar_t) is missing": x_t - (1 - alpha_bar).sqrt() * noise,
            "multiplied by sqrt(alpha_bar_t) where eq. 4 solved for x_0 divides": (x_t - (1 - alpha_bar).sqrt() * noise)
            * alpha_bar.sqrt(),
            "the noise is added instead of subtracted": (x_t + (1 - alpha_bar).sqrt() * noise) / alpha_bar.sqrt(),
        },
    )


# --------------------------------------------------------------------------------------------------------------------


@grader("q_posterior")
def check_q_posterior(q_posterior) -> None:
    generator = torch.Generator().manual_seed(5)
    schedule = schedule_with(BIG_BETAS)
    T = len(schedule)
    t = torch.tensor([1, 1, 2, 2, 3, 3, 4, 4, 5, 5, T, T])
    x_0 = torch.rand(len(t), 3, 4, 4, generator=generator) * 2 - 1
    noise = torch.randn(len(t), 3, 4, 4, generator=generator)
    # alpha_bar_0 = 1, then alpha_bar_1, ..., alpha_bar_T, in float64: with_zero[n] is alpha_bar_n
    with_zero = torch.cat([torch.ones(1, dtype=torch.float64), torch.cumprod(1 - BIG_BETAS.double(), 0)])

    def at(table: Tensor, steps: Tensor) -> Tensor:
        return table[steps].reshape(-1, 1, 1, 1)

    beta, alpha_bar = at(BIG_BETAS.double(), t - 1), at(with_zero, t)
    x_t = x_t_of(x_0.double(), noise.double(), alpha_bar).float()

    def posterior(rows: Tensor, alpha_bar_prev: Tensor, now: Tensor = alpha_bar, swap: bool = False):
        """Eq. 7 on `rows` with the given alpha_bar_{t-1} (and alpha_bar_t): float32 (mean, variance of shape (B,));
        `swap` gives each image the other's coefficient."""
        first, second = (x_0, x_t) if swap else (x_t, x_0)
        mean, var = posterior_of(
            first[rows].double(), second[rows].double(), beta[rows], now[rows], alpha_bar_prev[rows]
        )
        return mean.float(), var.flatten().float()

    def run(rows: Tensor, what: str, likely: str | None = None) -> tuple[Tensor, Tensor]:
        out = call(what, q_posterior, x_t[rows], x_0[rows], t[rows], schedule, likely=likely)
        mean, variance = expect_pair(out, "q_posterior(x_t, x_0, t, schedule)", "mean, variance")
        n = int(rows.sum())
        expect_tensor(mean, f"the mean of {what}", shape=(n, 3, 4, 4), floating=True)
        expect_dtype(mean, torch.float32, f"the mean of {what} for float32 x_t")
        expect_tensor(
            variance,
            f"the variance of {what}",
            shape=(n,),
            floating=True,
            likely="one variance per image, shape (B,): beta_tilde_t depends on t alone, as the schedule's tables do",
        )
        expect_dtype(variance, torch.float32, f"the variance of {what} for a float32 schedule")
        return mean, variance

    # 1. t > 1, where alpha_bar_{t-1} is in the schedule's tables
    later = t > 1
    alpha_bar_prev = at(with_zero, t - 1)
    mean, variance = run(later, "q_posterior(x_t, x_0, t, schedule) for t > 1")
    expected_mean, expected_var = posterior(later, alpha_bar_prev)
    expect_close(
        mean,
        expected_mean,
        "the mean of q_posterior(x_t, x_0, t, schedule) for t > 1",
        likely="mu_tilde_t = sqrt(alpha_bar_{t-1}) beta_t / (1 - alpha_bar_t) x_0 "
        "+ sqrt(alpha_t) (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) x_t (DDPM eq. 7), each image with its own t",
        mistakes={
            "the two coefficients are swapped: x_0's is sqrt(alpha_bar_{t-1}) beta_t / (1 - alpha_bar_t), x_t's is "
            "sqrt(alpha_t) (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t)": posterior(later, alpha_bar_prev, swap=True)[0],
            "alpha_bar_t where eq. 7 has alpha_bar_{t-1} (off by one): alpha_bar_{t-1} is schedule.alpha_bar(t - 1)": (
                posterior(later, alpha_bar)[0]
            ),
            "alpha_bar looked up one step early throughout: alpha_bar_t is schedule.alpha_bar(t) (index t - 1 of the "
            "table), alpha_bar_{t-1} is schedule.alpha_bar(t - 1)": posterior(
                later, at(with_zero, (t - 2).clamp(min=0)), at(with_zero, t - 1)
            )[0],
        },
    )
    expect_close(
        variance,
        expected_var,
        "the variance of q_posterior(x_t, x_0, t, schedule) for t > 1",
        likely="beta_tilde_t = (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) beta_t (DDPM eq. 7)",
        mistakes={
            "beta_t in place of beta_tilde_t: beta_t is one of Algorithm 2's choices of sigma_t^2, the posterior's "
            "variance is beta_tilde_t = (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) beta_t": beta[later]
            .flatten()
            .float(),
            "the standard deviation, not the variance: beta_tilde_t has no square root": expected_var.sqrt(),
            "the ratio is upside down: (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t), which is below 1": (
                (1 - alpha_bar) / (1 - alpha_bar_prev) * beta
            )[later]
            .flatten()
            .float(),
        },
    )

    # 2. t = 1: alpha_bar_0 = 1, which the tables do not hold; the mean is x_0 itself and the variance 0
    first = t == 1
    edge = (
        "at t = 1, alpha_bar_{t-1} is alpha_bar_0 = 1 (nothing noised yet), which the schedule's tables do not hold: "
        "alpha_bar(0) raises and alpha_bars[t - 2] wraps round to alpha_bar_T; put 1 where t = 1 (torch.where)"
    )
    mean, variance = run(first, "q_posterior(x_t, x_0, t, schedule) for t = 1", likely=edge)
    at_one = {
        "alpha_bar_0 taken as alpha_bar_1: " + edge: posterior(first, alpha_bar),
        "alpha_bar_{t-1} wrapped round to alpha_bar_T: " + edge: posterior(first, at(with_zero, t * 0 + T)),
        "alpha_bar_0 taken as 0: " + edge: posterior(first, alpha_bar * 0),
    }
    expected_mean, expected_var = posterior(first, at(with_zero, t - 1))
    expect_close(
        mean,
        expected_mean,
        "the mean of q_posterior(x_t, x_0, t, schedule) for t = 1, which is x_0",
        likely=edge,
        mistakes={description: wrong[0] for description, wrong in at_one.items()},
    )
    expect_close(
        variance,
        expected_var,
        "the variance of q_posterior(x_t, x_0, t, schedule) for t = 1, which is 0",
        likely=edge,
        mistakes={description: wrong[1] for description, wrong in at_one.items()},
    )

    # 3. a batch that mixes t = 1 with later steps: each image with its own t
    everything = torch.ones_like(first)
    mean, variance = run(everything, "q_posterior(x_t, x_0, t, schedule) on a batch mixing t = 1 and t > 1")
    expected_mean, expected_var = posterior(everything, at(with_zero, t - 1))
    expect_close(
        mean,
        expected_mean,
        "the mean of q_posterior on a batch mixing t = 1 and t > 1",
        likely="each image's own t: alpha_bar_0 = 1 only for the images with t = 1",
    )
    expect_close(
        variance,
        expected_var,
        "the variance of q_posterior on a batch mixing t = 1 and t > 1",
        likely="each image's own t: alpha_bar_0 = 1 only for the images with t = 1",
    )
    # On a GPU: the images, t and the schedule live there, and so must the mean and the variance.
    expect_runs_on_meta("q_posterior(x_t, x_0, t, schedule)", q_posterior, x_t[:4], x_0[:4], t[:4], schedule)


# --------------------------------------------------------------------------------------------------------------------


@grader("TinyDiffuser", expects="class")
def check_tiny_diffuser(TinyDiffuser) -> None:
    # Sizes and T other than the defaults, so that an argument the class ignores shows.
    config = ref.TinyDiffuserConfig(image_shape=(2, 3, 5), hidden_size=16, n_hidden_layers=2)
    T = 50
    schedule = ref.NoiseSchedule(ref.linear_schedule(T, 0.01, 0.3))
    model = TinyDiffuser(config, schedule)
    expect_diffusion_model(model, "TinyDiffuser", (2, 3, 5))
    torch.manual_seed(3)
    reference = ref.TinyDiffuser(config, schedule)
    expected_count = n_params(reference)
    got_count = n_params(model)
    if got_count != expected_count:
        fail(
            "TinyDiffuser has the wrong number of parameters.",
            f"{expected_count}",
            f"{got_count}",
            "the first Linear takes C*H*W + 1 inputs: you forgot to append t"
            if got_count == expected_count - 16
            else "config.n_hidden_layers, config.hidden_size or config.image_shape is ignored: build the layers from "
            "the config"
            if got_count in _counts_with_other_sizes(config)
            else "n_hidden_layers of Linear -> ReLU (the first takes C*H*W + 1 inputs), then Linear(hidden_size, C*H*W)",
        )
    copy_weights(reference, model, "TinyDiffuser")
    images = torch.randn(8, 2, 3, 5)
    t = torch.tensor([1, 7, 13, 25, 31, 40, 49, 50])
    got = model(images, t)
    expect_tensor(got, "TinyDiffuser(images (8, 2, 3, 5), t (8,))", shape=(8, 2, 3, 5), floating=True)
    expect_dtype(
        got,
        images.dtype,
        "TinyDiffuser's output for float32 images",
        "t turned into float64 somewhere: convert it with t.to(images.dtype)",
    )
    expected = reference(images, t)
    pixels = images.reshape(8, -1)

    def network(t_input: Tensor) -> Tensor:  # the reference's MLP on the pixels with a given t feature
        return reference.model(torch.cat([pixels, t_input], 1)).reshape(8, 2, 3, 5)

    def as_noise(x0_hat: Tensor, table: Tensor = schedule.alpha_bars, root: bool = True) -> Tensor:
        a = table[t - 1].reshape(-1, 1, 1, 1)
        return eps_of(images, x0_hat, a) if root else (images - a * x0_hat) / (1 - a)

    x0_hat = network(t[:, None] / T)
    expect_close(
        got,
        expected,
        "TinyDiffuser's output with the reference's weights",
        atol=1e-4,
        rtol=1e-4,
        likely="flatten each image, append t / T (T = len(self.noise_schedule)), the MLP guesses x_0, and "
        "eps = (x_t - sqrt(alpha_bar_t) x0_hat) / sqrt(1 - alpha_bar_t)",
        mistakes={
            "the network's guess of x_0 is returned as it is: the model must return the noise, "
            "eps = (x_t - sqrt(alpha_bar_t) x0_hat) / sqrt(1 - alpha_bar_t)": x0_hat,
            "alpha_t where eq. 4 needs alpha_bar_t in the conversion to the noise": as_noise(x0_hat, schedule.alphas),
            "the square roots are missing in the conversion: eq. 4 scales by sqrt(alpha_bar_t) and "
            "sqrt(1 - alpha_bar_t)": as_noise(x0_hat, root=False),
            "t is appended unscaled: divide it by T = len(self.noise_schedule) so it lies in (0, 1]": as_noise(
                network(t[:, None].float())
            ),
            "t is scaled by a fixed number, not by this schedule's T = len(self.noise_schedule)": as_noise(
                network(t[:, None] / 100)
            ),
            "t is scaled by (T - 1) or shifted: the input is t / T": as_noise(network((t[:, None] - 1) / T)),
        },
    )
    expect(
        not torch.allclose(model(images, torch.full((8,), 1)), model(images, torch.full((8,), 50))),
        "TinyDiffuser gives the same output for t = 1 and t = 50.",
        likely="t never reaches the network",
    )
    # On a GPU: the model, its schedule and its inputs live there, and so must every tensor forward makes.
    on_meta = TinyDiffuser(config, schedule_with(ref.linear_schedule(T, 0.01, 0.3)))
    if is_judges_mirror(on_meta):  # the class-grading judge cannot move the worker's model (tests/test_remote.py)
        return
    on_meta = on_meta.to("meta")
    got = run_on_meta(
        lambda: on_meta(images.to("meta"), t.to("meta")),
        "TinyDiffuser's forward",
        "a tensor made in forward on the CPU: pass device= (device=images.device), or build it from the inputs "
        "(num_steps.to(images.dtype), torch.cat of tensors on one device)",
    )
    if got is not NOT_ON_META:
        expect_on_device(got, "meta", "TinyDiffuser's output")


def _counts_with_other_sizes(config) -> set[int]:
    """Parameter counts of TinyDiffusers built with the default value of one or more of the config's sizes."""
    default = ref.TinyDiffuserConfig()
    counts = set()
    for shape in (config.image_shape, default.image_shape):
        for hidden in (config.hidden_size, default.hidden_size):
            for depth in (config.n_hidden_layers, default.n_hidden_layers):
                pixels = math.prod(shape)
                widths = [pixels + 1] + [hidden] * depth + [pixels]
                counts.add(sum(a * b + b for a, b in zip(widths[:-1], widths[1:])))
    return counts - {n_params(ref.TinyDiffuser(config))}


# --------------------------------------------------------------------------------------------------------------------


class RecordingPredictor(StrictModel):
    """A known model for grading `diffusion_loss`: eps_theta(x, t) = w x + b_t, recording what it is called with."""

    def __init__(self, schedule: nn.Module, image_shape=(2, 3, 3)):
        super().__init__(ShapeOnly(image_shape), schedule)
        self.w = nn.Parameter(torch.tensor(0.5))
        self.register_buffer("b", torch.linspace(-0.3, 0.3, len(schedule)), persistent=False)
        self.calls: list[tuple[Tensor, Tensor]] = []

    def forward(self, images: Tensor, num_steps: Tensor) -> Tensor:
        self.calls.append((images.detach().clone(), num_steps.detach().clone()))
        return self.w * images + self.b[num_steps.long() - 1].reshape(-1, 1, 1, 1)


@grader("diffusion_loss", uses=("noise_img",))
def check_diffusion_loss(diffusion_loss) -> None:
    torch.manual_seed(0)
    schedule = schedule_with(BIG_BETAS)
    T = len(schedule)
    model = RecordingPredictor(schedule)
    x_0 = torch.rand(3000, 2, 3, 3, generator=torch.Generator().manual_seed(4)) * 2 - 1
    with unchanged("diffusion_loss", model=model, x_0=x_0):
        loss = diffusion_loss(model, x_0)
    expect(
        isinstance(loss, Tensor),
        "diffusion_loss should return the loss as a tensor.",
        "a 0-d float tensor",
        f"{type(loss).__name__}: {loss!r:.60}",
        "return the tensor itself, not loss.item(): train calls loss.backward() on it",
    )
    expect(
        loss.numel() == 1,
        "diffusion_loss should return one number for the whole batch.",
        "shape ()",
        f"shape {tuple(loss.shape)}",
        "average over every pixel of every image: F.mse_loss(prediction, noise)",
    )
    expect(
        loss.requires_grad,
        "the loss carries no gradient.",
        "a tensor with requires_grad=True",
        "requires_grad=False",
        "the model's output must flow into the loss: no .detach(), no torch.no_grad()",
    )
    expect(
        len(model.calls) == 1,
        "diffusion_loss should call the model once on the whole batch.",
        "1 call",
        f"{len(model.calls)} calls",
    )
    x_t, t = model.calls[0]
    expect_tensor(x_t, "the images given to the model", shape=tuple(x_0.shape), floating=True)
    expect_tensor(t, "the t given to the model", shape=(len(x_0),), floating=False)
    expect(
        t.unique().numel() > 1,
        f"diffusion_loss gave every image of the batch the same t ({len(t)} images).",
        "one t per image, drawn independently",
        f"t = {int(t[0])} for all {len(t)} images",
        "one t drawn for the whole batch: draw one per image, shape (batch size,), as noise_img does",
    )
    expect(
        int(t.min()) >= 1 and int(t.max()) == T,
        f"t given to the model should run over {{1, ..., {T}}}.",
        f"t from 1 to {T}",
        f"t from {int(t.min())} to {int(t.max())}",
        "draw t and x_t with your noise_img, from the model's own schedule (model.noise_schedule)",
    )
    expect(
        not torch.allclose(x_t, x_0),
        "the model was given the clean images x_0.",
        "x_t, the noised images",
        "x_0",
        "the model predicts the noise in x_t: call it on noise_img's noised images",
    )
    # The noise that made x_t, from eq. 4 solved for eps: it must be standard Gaussian.
    alpha_bar = schedule.alpha_bars[t - 1].reshape(-1, 1, 1, 1)
    eps = eps_of(x_t, x_0, alpha_bar)
    mean, var, _ = moments(eps)
    expect_statistic(
        var,
        1.0,
        var_tolerance(1.0, eps.numel()),
        "the noise in the x_t given to the model is not N(0, I) under the model's schedule: x_t should "
        "be sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps with model.noise_schedule's alpha_bar_t.",
        likely="noise x_0 with model.noise_schedule (not a new schedule), through noise_img: check that "
        "noise_img passes its own check first",
    )
    prediction = model.w.detach() * x_t + model.b[t - 1].reshape(-1, 1, 1, 1)
    expected = ((prediction - eps) ** 2).mean()
    got = loss.detach().reshape(())
    expect_close(
        got,
        expected,
        "the loss, compared with the mean of (eps_theta(x_t, t) - eps)^2 over the batch",
        atol=1e-5,
        likely="loss = mean over the batch and pixels of (eps_theta(x_t, t) - eps)^2: F.mse_loss(prediction, noise)",
        mistakes={
            "the prediction is compared with the image x_0; the model predicts the noise eps": (
                (prediction - x_0) ** 2
            ).mean(),
            "the prediction is compared with x_t; the model predicts the noise eps that made it": (
                (prediction - x_t) ** 2
            ).mean(),
            "a sum, not a mean: F.mse_loss averages (reduction='mean')": ((prediction - eps) ** 2).sum(),
            "the squares are missing: the loss is the mean *squared* error": (prediction - eps).abs().mean(),
        },
    )
    model.zero_grad()
    loss.backward()
    expect(
        model.w.grad is not None and model.w.grad.abs() > 0,
        "loss.backward() gave the model no gradient.",
        likely="compute the loss from the model's output itself",
    )
    # On a GPU, the model and the minibatch live there, and so must every tensor the loss makes.
    on_meta = RecordingPredictor(schedule_with(BIG_BETAS)).to("meta")
    loss = run_on_meta(lambda: diffusion_loss(on_meta, x_0[:8].to("meta")), "diffusion_loss")
    if loss is not NOT_ON_META:
        expect_on_device(loss, "meta", "the loss")


# --------------------------------------------------------------------------------------------------------------------


def _noise_prediction_error(model: DiffusionModel, images: Tensor, seed: int = 0) -> float:
    """Mean squared error of the model's noise prediction on `images`, noised by the reference, over 4 draws."""
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    total = 0.0
    with torch.no_grad():
        for _ in range(4):
            t, noise, x_t = ref.noise_img(images, model.noise_schedule)
            total += F.mse_loss(model(x_t, t), noise).item()
    torch.random.set_rng_state(generator_state)
    return total / 4


# Measured on the toy task below: the reference's trained TinyDiffuser predicts the noise with an MSE of about 0.26;
# untrained, about 1; trained to predict x_0 instead of the noise, 1.08; trained to predict x_t, 0.51.
TRAIN_PASS_MSE = 0.4


class NoisePredictingMLP(StrictModel):
    """The graders' own small denoiser for grading `train`: an MLP that predicts the noise directly, with t/T appended.

    Not the student's TinyDiffuser: `train` is graded on what it does to a model, whichever model that is.
    """

    def __init__(self, image_shape: tuple[int, int, int], schedule: nn.Module, hidden_size: int = 256):
        super().__init__(ShapeOnly(image_shape), schedule)
        n = math.prod(image_shape)
        self.net = nn.Sequential(nn.Linear(n + 1, hidden_size), nn.ReLU(), nn.Linear(hidden_size, n))

    def forward(self, images: Tensor, num_steps: Tensor) -> Tensor:
        t = num_steps.to(images.dtype)[:, None] / len(self.noise_schedule)
        return self.net(torch.cat([images.flatten(1), t], 1)).view(images.shape)


def train_setup() -> tuple[DiffusionModel, TrainConfig, Tensor, Tensor]:
    """The toy task `train` is graded on: 3x4x5 gradients, T = 80, a few hundred Adam steps on the CPU.

    Every TrainConfig field that `train` reads differs from its default, so that a field the loop ignores shows.
    """
    images = normalize_img(gradient_images(2560, (3, 4, 5), seed=0))
    torch.manual_seed(0)
    model = NoisePredictingMLP((3, 4, 5), ref.NoiseSchedule(ref.linear_schedule(80)))
    train_config = TrainConfig(epochs=30, lr=2e-3, batch_size=64, device="cpu", seed=5, n_images_to_log=3)
    return model, train_config, images[:2048], images[2048:]


class _BatchSizes:
    """Records the batch size of every forward call made with gradients on (the training steps)."""

    def __init__(self, model: nn.Module):
        self.sizes: list[int] = []
        self.handle = model.register_forward_pre_hook(self)

    def __call__(self, module, args):
        if torch.is_grad_enabled():
            self.sizes.append(args[0].shape[0])


@grader("train", time_limit=300, uses=("diffusion_loss",))  # trains a small model: minutes allowed, not seconds
def check_train(train) -> None:
    model, config, trainset, testset = train_setup()
    untrained = {k: v.clone() for k, v in model.state_dict().items()}
    schedule = copy.deepcopy(model.noise_schedule)  # what the model was given; the error below is measured with it
    log = RunLog()
    batches = _BatchSizes(model)
    with unchanged("train", trainset=trainset, testset=testset):
        result = train(model, config, trainset, testset, log=log)
    batches.handle.remove()
    expect(
        isinstance(result, DiffusionModel), "train should return the trained model.", "the model", type(result).__name__
    )
    kept = result.noise_schedule
    expect(
        kept is not None and len(kept) == len(schedule) and torch.equal(kept.betas.cpu(), schedule.betas),
        "train replaced the model's noise schedule: the model should come back with the schedule it was given.",
        f"T = {len(schedule)}, betas {fmt(schedule.betas)}",
        "no schedule" if kept is None else f"T = {len(kept)}, betas {fmt(kept.betas)}",
        "a NoiseSchedule made inside train: the schedule belongs to the model, made once when the model is built "
        "(train only reads model.noise_schedule, through diffusion_loss)",
    )
    changed = any(not torch.equal(untrained[k], v.cpu()) for k, v in result.state_dict().items() if k in untrained)
    expect(
        changed,
        "train did not change the model's weights.",
        likely="optimizer.step() is never called, or the optimizer holds parameters of another model",
    )
    # The configured batch size and number of epochs: 30 epochs of 2048 / 64 = 32 steps.
    steps_expected = config.epochs * len(trainset) // config.batch_size
    sizes = sorted(set(batches.sizes))
    expect(
        sizes == [config.batch_size],
        f"the model should see minibatches of config.batch_size = {config.batch_size} images.",
        f"batches of {config.batch_size}",
        f"batch sizes {sizes[:5]}",
        "minibatches(trainset, config.batch_size): the batch size comes from the config",
    )
    losses = log.history.get("loss", [])
    expect(
        len(losses) > 0,
        "train logged no loss.",
        "log.log(step, loss=...) after every optimizer step",
        "nothing under 'loss'",
        "the notebook draws the loss curve from the log",
    )
    expect(
        len(losses) == steps_expected,
        f"train should log one loss per optimizer step: config.epochs = {config.epochs} passes of "
        f"{len(trainset) // config.batch_size} steps.",
        f"{steps_expected} losses",
        f"{len(losses)} losses",
        "loop `for epoch in range(config.epochs)` around the minibatches, and log after every step"
        if len(batches.sizes) != steps_expected
        else "call log.log(step, loss=loss.item()) once per step",
    )
    expect(
        [s for s, _ in losses] == list(range(1, steps_expected + 1)),
        "the steps logged should count 1, 2, 3, ...",
        "1, 2, 3, ...",
        str([s for s, _ in losses][:6]),
        "increase step by one after every optimizer step",
    )
    expect(
        "eval_loss" in log.history,
        "train logged no eval_loss although a testset was given.",
        "log_eval(model, testset, log, step, config) after each epoch",
        f"keys {sorted(log.history)}",
        "use the given log_eval",
    )
    expect(
        len(log.images) > 0,
        "train logged no reconstructions although a testset was given.",
        likely="call the given log_eval(model, testset, log, step, config) after each epoch",
    )
    result.noise_schedule = schedule  # measured with the schedule the model was given, whatever train did
    error = _noise_prediction_error(result.cpu(), testset)
    if error > TRAIN_PASS_MSE:
        fail(
            "after training, the model predicts the noise in held-out images badly.",
            f"noise-prediction MSE below {TRAIN_PASS_MSE} (the reference reaches about 0.26; untrained gives about 1)",
            f"{error:.3f}",
            "each step should be diffusion_loss(model, x_0), zero_grad, backward, step; check that diffusion_loss "
            "passes its own check, and that optimizer.zero_grad() runs every step",
        )
    _check_learning_rate(train)
    exploding = replace(config, epochs=1, lr=1e30)
    try:
        train(train_setup()[0], exploding, trainset[:640], log=RunLog())
    except FloatingPointError:
        pass
    else:
        fail(
            "train kept going although the loss became NaN or inf (run with lr = 1e30).",
            "a FloatingPointError",
            "no error",
            "log every step's loss with log.log(step, loss=loss.item()): the log stops a NaN run",
        )


def _check_learning_rate(train) -> None:
    """Adam's first step moves every weight with a gradient by about lr, whatever the gradient: measure it."""
    model, config, trainset, _ = train_setup()
    lr = 0.0137
    before = [p.detach().clone() for p in model.parameters()]
    train(model, replace(config, epochs=1, lr=lr), trainset[: config.batch_size], log=RunLog())
    moves = torch.cat([(p.detach().cpu() - b).abs().flatten() for p, b in zip(model.parameters(), before, strict=True)])
    moved = moves[moves > 0]
    got = float(moved.median()) if len(moved) else 0.0
    expect(
        abs(got - lr) < 0.05 * lr,
        f"one training step with config.lr = {lr} should move each weight by about {lr} (Adam's first step).",
        f"a typical move of {lr}",
        f"{got:.4g}",
        "the optimizer ignores config.lr: torch.optim.Adam(model.parameters(), lr=config.lr)"
        if abs(got - 1e-3) < 5e-5
        else "use torch.optim.Adam(model.parameters(), lr=config.lr), one step per minibatch",
    )


# --------------------------------------------------------------------------------------------------------------------


@grader("sample", time_limit=120)  # runs a whole reverse process
def check_sample(sample) -> None:
    torch.manual_seed(0)
    schedule = schedule_with(BIG_BETAS)
    T = len(schedule)
    model = LinearNoisePredictor(schedule)
    n = 4000
    with unchanged("sample", model=model):
        final = sample(model, n)
    expect_tensor(final, f"sample(model, {n})", shape=(n, 1, 4, 4), floating=True)
    expect_dtype(final, torch.float32, f"sample(model, {n}) with a float32 schedule")
    expect(
        bool(final.isfinite().all()),
        "the samples x_0 hold NaN or inf.",
        "finite numbers",
        f"{int((~final.isfinite()).sum())} of {final.numel()} values NaN or inf",
        "a division by zero at the last step: alpha_bar is looked up one step early, alpha_bar_{t-1} (with "
        "alpha_bar_0 = 1, 1 - alpha_bar_0 = 0 at t = 1): the step from x_t uses alpha_bar_t, schedule.alpha_bar(t)",
    )
    calls = model.calls
    expect(
        all(c.shape == (n,) for c in calls),
        "the model should get one t per sample, shape (n_samples,).",
        f"t of shape ({n},)",
        f"shapes {sorted({tuple(c.shape) for c in calls})}",
        "torch.full((n_samples,), t) makes the batch of time steps",
    )
    expect(
        all(c.dtype in (torch.int64, torch.int32) for c in calls),
        "t passed to the model should be integers.",
        "a long tensor",
        str(calls[0].dtype),
    )
    order = [int(c[0]) for c in calls]
    expect(
        order == list(range(T, 0, -1)),
        "sample should call the model once per step, t = T down to 1.",
        str(list(range(T, 0, -1))),
        str(order),
        "range(T, 0, -1) runs T, ..., 1; range(T - 1, -1, -1) is off by one"
        if order == list(range(T - 1, -1, -1))
        else "loop t from T down to 1, both included",
    )
    expect(
        not any(model.grad_enabled),
        "sample should run without gradients.",
        "torch.is_grad_enabled() == False",
        "gradients were on",
        "decorate sample with @torch.no_grad(): with T model calls the graph would fill memory",
    )

    exact = model.exact_moments()
    mean, var, _ = moments(final)
    count = final.numel()
    names = {
        "noise is added at t = 1 too: the last step returns the mean, without noise": "noise at t = 1",
        "the noise scale sigma_t is beta_t; it should be sqrt(beta_t) (sigma_t^2 = beta_t)": "sigma = beta",
        "the division by sqrt(alpha_t) is missing": "no division by sqrt(alpha_t)",
        "no noise is added: Algorithm 2 adds sigma_t z, z ~ N(0, I), at every step but the last; without it every "
        "sample falls onto the mean": "no noise",
        "alpha_bar is looked up one step early, alpha_bar_{t-1}: the step from x_t uses alpha_bar_t, "
        "schedule.alpha_bar(t)": "alpha_bar(t - 1)",
        "alpha_bar is looked up one step early, alpha_bar_{t-1} (alpha_bar_1 at t = 1): the step from x_t uses "
        "alpha_bar_t, schedule.alpha_bar(t)": "alpha_bar(t - 1), clamped",
    }
    wrong_means = {desc: model.exact_moments(v)[-1][0] for desc, v in names.items()}
    wrong_vars = {desc: model.exact_moments(v)[-1][1] for desc, v in names.items()}
    default = LinearNoisePredictor(ref.NoiseSchedule(ref.linear_schedule(T)))
    wrong_means["a new NoiseSchedule was built: use the model's own, model.noise_schedule"] = default.exact_moments()[
        -1
    ][0]
    expect_statistic(
        mean,
        exact[-1][0],
        sampling_tolerance(math.sqrt(exact[-1][1]), count),
        "the mean of the samples x_0 differs from what Algorithm 2 gives for the grader's model.",
        "x_{t-1} = (x_t - beta_t / sqrt(1 - alpha_bar_t) eps_theta(x_t, t)) / sqrt(alpha_t) + sigma_t z",
        mistakes=wrong_means,
    )
    expect_statistic(
        var,
        exact[-1][1],
        var_tolerance(exact[-1][1], count),
        "the variance of the samples x_0 differs from what Algorithm 2 gives for the grader's model.",
        "x_T ~ N(0, I) (torch.randn); z ~ N(0, I) for t > 1 and z = 0 at t = 1; sigma_t = sqrt(beta_t)",
        mistakes=wrong_vars,
    )

    model.calls.clear()
    steps = sample(model, n, return_all_steps=True)
    expected_shape = (T + 1, n, 1, 4, 4)
    if isinstance(steps, (list, tuple)):
        fail(
            "sample(..., return_all_steps=True) should return one tensor.",
            f"shape {expected_shape}",
            f"a {type(steps).__name__} of {len(steps)}",
            "torch.stack the list of x_t",
        )
    expect_tensor(steps, "sample(model, n, return_all_steps=True)", shape=expected_shape, floating=True)
    _, first_var, _ = moments(steps[0])
    if abs(first_var - 1) > var_tolerance(1.0, count) and abs(moments(steps[-1])[1] - 1) <= var_tolerance(1.0, count):
        fail(
            "the sequence runs backwards.",
            "steps[0] = x_T (pure noise), steps[-1] = x_0",
            "steps[0] looks like x_0",
            "append each new x_{t-1} to the end, starting from x_T",
        )
    expect_statistic(
        first_var,
        1.0,
        var_tolerance(1.0, count),
        "x_T, where sampling starts, should be standard Gaussian noise.",
        "x_T ~ N(0, I): torch.randn(n_samples, *model.image_shape)",
        mistakes={"x_T drawn from a uniform distribution: use torch.randn, not torch.rand": 1 / 3},
    )
    for i, (m, v) in enumerate(exact):
        t = T - i
        emp_mean, emp_var, _ = moments(steps[i])
        expect_statistic(
            emp_mean,
            m,
            sampling_tolerance(math.sqrt(v), count),
            f"the mean of steps[{i}] (x_{t}) is off.",
            "steps[i] is x_{T - i}: x_T first, then one entry per denoising step",
        )
        expect_statistic(
            emp_var,
            v,
            var_tolerance(v, count),
            f"the variance of steps[{i}] (x_{t}) is off.",
            "steps[i] is x_{T - i}: x_T first, then one entry per denoising step",
        )
    # On a GPU, the model lives there, and so must x_T, every t and every z the sampler makes.
    on_meta = LinearNoisePredictor(schedule_with(BIG_BETAS)).to("meta")
    final = run_on_meta(
        lambda: sample(on_meta, 8),
        "sample",
        "a tensor made on the CPU: pass device= to each tensor you make, the device of the model's schedule "
        "(x_T = torch.randn(..., device=model.noise_schedule.betas.device), torch.full(..., device=...)), or "
        "torch.randn_like(x) for z",
    )
    if final is not NOT_ON_META:
        expect_on_device(final, "meta", "x_0, returned by sample")
