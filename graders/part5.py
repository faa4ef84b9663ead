"""Graders for Part 5: the probability-flow ODE of a DDPM model, Heun's method, and flow matching.

Each `check_<step>` takes your function or class and compares it with independent float64 arithmetic on known
inputs. The ODE steps run on parameter-free models whose output is a known function of their input and time, so
every drift and every sampler's output is known exactly; the flow-matching loss is checked through what it hands the
model (the times, the noised images) and through its value, so any correct way of drawing the noise passes. Where a
common mistake gives a recognisable answer, the failure names it.
"""

import math
from functools import partial

import torch
from torch import Tensor

from graders.arithmetic import x_t_of
from graders.core import (
    call,
    copy_weights,
    expect,
    expect_close,
    expect_dtype,
    expect_pair,
    expect_statistic,
    expect_tensor,
    fail,
    grader,
    sampling_tolerance,
)
from graders.fixtures import (
    NOT_ON_META,
    ShapeOnly,
    StrictModel,
    expect_on_device,
    expect_runs_on_meta,
    run_on_meta,
    unchanged,
)
from solutions import part1, part2
from solutions import part5 as ref


def _linear_schedule() -> part1.NoiseSchedule:
    """A small linear schedule that reaches noise: sigma_1 = 0.1, sigma_T about 4."""
    return part1.NoiseSchedule(torch.linspace(0.01, 0.25, 20))


# --------------------------------------------------------------------------------------------------------------------
# Stand-ins as strict as the course's networks (graders.fixtures.StrictModel): float32 images and a tensor of one
# time per image, on the model's own device; the meta device stands in for a GPU.

META = torch.device("meta")


class _Strict(StrictModel):
    """A known function of (images, time) behind the U-Net's contract, with one parameter that reaches its output
    (so gradients left on show). Records each call. On `device` go its parameter and its schedule's betas, from
    which model.device is read; alpha_bars stay on the CPU, where sigma_to_t reads them on any device."""

    time_kind = "float"  # flow matching's s, and the fractional t of the ODE
    needs_schedule = False

    def __init__(self, schedule=None, image_shape=(1, 3, 3), device: torch.device | str = "cpu"):
        super().__init__(ShapeOnly(image_shape), schedule)
        self.anchor = torch.nn.Parameter(torch.zeros((), device=device))
        if schedule is not None:
            schedule.betas = schedule.betas.to(device)
        self.calls: list[tuple[Tensor, Tensor]] = []
        self.grad_enabled: list[bool] = []

    def forward(self, images: Tensor, time: Tensor) -> Tensor:
        self.calls.append((images.detach().clone(), time.detach().clone()))
        self.grad_enabled.append(torch.is_grad_enabled())
        return self.output(images, time.to(images.dtype).reshape(-1, 1, 1, 1)) + self.anchor

    def output(self, images: Tensor, time: Tensor) -> Tensor:
        raise NotImplementedError


class _KnownEps(_Strict):
    """eps_theta(x, t) = (0.5 + t / T) x + 0.1: a known function of x and of a fractional t. Records each call."""

    # The U-Net takes t as floats or as integers; a rounded t is named by the check of its value.
    time_kind = "float or integer"

    def __init__(self, schedule, device: torch.device | str = "cpu"):
        super().__init__(schedule, (1, 3, 3), device)

    def output(self, images: Tensor, time: Tensor) -> Tensor:
        return (0.5 + time / len(self.noise_schedule)) * images + 0.1


def _drift_expected(z: Tensor, sigma: float, schedule) -> Tensor:
    """dz/dsigma of _KnownEps, in float64: eps_theta(z / sqrt(1 + sigma^2), t(sigma))."""
    t = ref.sigma_to_t(schedule, sigma)
    x = z.double() / math.sqrt(1 + sigma**2)
    return (0.5 + t / len(schedule)) * x + 0.1


# --------------------------------------------------------------------------------------------------------------------


@grader("pf_ode_drift")
def check_pf_ode_drift(pf_ode_drift) -> None:
    schedule = _linear_schedule()
    sigmas = ref.sigmas_of(schedule)
    torch.manual_seed(0)
    z = torch.randn(4, 1, 3, 3) * 3
    for what, sigma in (("at sigma_7 (an integer step)", float(sigmas[6])), ("between steps 12 and 13", None)):
        sigma = sigma if sigma is not None else float((sigmas[11] * sigmas[12]).sqrt())
        model = _KnownEps(schedule)
        with unchanged(f"pf_ode_drift(model, z, sigma) {what}", z=z):
            got = pf_ode_drift(model, z, sigma)
        expected = _drift_expected(z, sigma, schedule)
        expect(
            len(model.calls) == 1,
            f"pf_ode_drift(model, z, sigma) {what} should call the model once.",
            "1 call",
            f"{len(model.calls)} calls",
        )
        x_in, t_in = model.calls[0]
        t_in = expect_tensor(t_in, f"the t pf_ode_drift passes to the model {what}", shape=(4,))
        t_expected = ref.sigma_to_t(schedule, sigma)
        expect_close(
            t_in.double(),
            torch.full((4,), t_expected, dtype=torch.float64),
            f"the t pf_ode_drift passes to the model {what}",
            atol=1e-4,
            likely="the model takes the step t(sigma) = sigma_to_t(model.noise_schedule, sigma), fractional between "
            "two steps, one per image; not sigma itself, and not rounded",
        )
        expect_close(
            x_in,
            z / math.sqrt(1 + sigma**2),
            f"the images pf_ode_drift passes to the model {what}",
            likely="the model takes x_t = z / sqrt(1 + sigma^2) = sqrt(alpha_bar_t) z, the variable it was trained "
            "on, not z",
            mistakes={"z itself: the model takes x_t = z / sqrt(1 + sigma^2), not z": z},
        )
        eps = expected.float()
        expect_close(
            got,
            eps,
            f"pf_ode_drift(model, z, sigma) {what}",
            atol=1e-4,
            likely="dz/dsigma = (z - D) / sigma with D = z - sigma eps_theta(x_t, t)",
            mistakes={
                "the 1/sigma factor is missing: dz/dsigma = (z - D) / sigma": sigma * eps,
                "the sign: dz/dsigma = (z - D) / sigma, which points away from the denoised image D": -eps,
                "the drift of x_t, not of z: the ODE's state is z = x_t / sqrt(alpha_bar_t)": eps
                / math.sqrt(1 + sigma**2),
            },
        )
        expect_dtype(got, torch.float32, f"pf_ode_drift(model, z, sigma) {what}, for a float32 z")
    # On the test device: in the course the model and z live on a GPU, and the t made here must go there too.
    model = _KnownEps(_linear_schedule(), device=META)
    sigma = float(sigmas[6])
    got = run_on_meta(partial(pf_ode_drift, model, z.to(META), sigma), "pf_ode_drift(model, z, sigma)")
    if got is not NOT_ON_META:
        expect_on_device(got, META, "the drift pf_ode_drift returns")


@grader("karras_sigmas")
def check_karras_sigmas(karras_sigmas) -> None:
    for n, low, high, rho in ((5, 0.002, 80.0, 7.0), (18, 0.1, 4.0, 7.0), (4, 0.5, 2.0, 1.0)):
        call = f"karras_sigmas({n}, {low}, {high}, rho={rho})"
        got = expect_tensor(karras_sigmas(n, low, high, rho), call, floating=True)
        i = torch.arange(n, dtype=torch.float64)
        expected = (high ** (1 / rho) + i / (n - 1) * (low ** (1 / rho) - high ** (1 / rho))) ** rho
        with_zero = torch.cat([expected, torch.zeros(1, dtype=torch.float64)])
        if got.shape == (n,):
            fail(
                f"{call} has {n} entries.",
                f"{n + 1}: the {n} noise levels, then 0",
                f"{n}, ending in {got[-1].item():.4g}",
                f"one noise level is missing: n = {n} levels from sigma_max to sigma_min (i = 0, ..., n - 1), then 0"
                if got[-1] == 0
                else "the last entry, sigma_n = 0 (the clean image), is missing: torch.cat([sigmas, zeros(1)])",
            )
        mistakes = {
            "the noise levels rise: sigma_0 = sigma_max, falling to sigma_min, then 0": torch.cat(
                [expected.flip(0), torch.zeros(1, dtype=torch.float64)]
            ),
            "i / n instead of i / (n - 1): the last level before 0 must be sigma_min": torch.cat(
                [(high ** (1 / rho) + i / n * (low ** (1 / rho) - high ** (1 / rho))) ** rho, torch.zeros(1)]
            ),
        }
        if rho != 1:
            mistakes["spaced evenly in sigma: the exponent rho is missing (evenly in sigma^(1/rho), then ^rho)"] = (
                torch.cat([torch.linspace(high, low, n, dtype=torch.float64), torch.zeros(1, dtype=torch.float64)])
            )
        expect_close(
            got,
            with_zero,
            call,
            atol=1e-6,
            rtol=1e-5,
            likely="(sigma_max^(1/rho) + i / (n - 1) (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho for i = 0..n-1",
            mistakes=mistakes,
        )
        # float32 rounds sigma_min about 1e-7 of itself away, below sigma_1 at times: sigma_to_t then refuses it
        expect_dtype(
            got,
            torch.float64,
            call,
            likely="computed in float32: its sigma_min can land a hair below the model's sigma_1, outside the range "
            "the sampler's sigma_to_t accepts; make the grid with dtype=torch.float64",
        )


class _Linear:
    """dx/ds = a x + b s: a drift with a known Heun step. Records each call's s; NaN at s = 0 where asked (like the ODE
    in sigma, which divides by sigma)."""

    def __init__(self, a: float, b: float, nan_at_zero: bool = False):
        self.a, self.b, self.nan_at_zero = a, b, nan_at_zero
        self.times: list[float] = []

    def __call__(self, x: Tensor, s: float) -> Tensor:
        self.times.append(float(s))
        if self.nan_at_zero and s == 0:
            return torch.full_like(x, math.nan)
        return self.a * x + self.b * s


@grader("heun_step")
def check_heun_step(heun_step) -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 1, 3, 3, dtype=torch.float64)
    a, b, s, s_next = -0.7, 0.3, 2.0, 1.5
    drift = _Linear(a, b)
    with unchanged(f"heun_step(drift, x, {s}, {s_next})", x=x):
        got = heun_step(drift, x, s, s_next)
    h = s_next - s
    d = a * x + b * s
    euler = x + h * d
    expected = x + h * (d + (a * euler + b * s_next)) / 2
    expect_close(
        got,
        expected,
        f"heun_step(drift, x, {s}, {s_next}) for dx/ds = {a} x + {b} s",
        atol=1e-9,
        likely="x + (s_next - s) (d + d') / 2, with d = drift(x, s) and d' = drift(x_euler, s_next) at Euler's point",
        mistakes={
            "only Euler's step: Heun corrects it with the slope at its end, (d + d') / 2": euler,
            "the second slope is taken at x, not at Euler's point x + (s_next - s) d": x
            + h * (d + (a * x + b * s_next)) / 2,
            "the second slope is taken at time s, not s_next": x + h * (d + (a * euler + b * s)) / 2,
            "the corrected slope replaces both: x + (s_next - s) d', not the mean of d and d'": x
            + h * (a * euler + b * s_next),
        },
    )
    expect(
        sorted(drift.times) == [s_next, s],
        f"heun_step(drift, x, {s}, {s_next}) should call the drift twice, at s and at s_next.",
        f"times {[s, s_next]}",
        f"times {drift.times}",
    )
    last = _Linear(a, b, nan_at_zero=True)
    got = heun_step(last, x, 0.5, 0.0)
    euler_last = x + (0.0 - 0.5) * (a * x + b * 0.5)
    if not torch.isfinite(got).all() or 0.0 in last.times:
        fail(
            "heun_step(drift, x, 0.5, 0.0), the last step, evaluates the drift at s_next = 0.",
            "Euler's step alone at s_next = 0: one call of the drift, at s = 0.5",
            f"drift called at {last.times}; {'NaN in the result' if not torch.isfinite(got).all() else 'finite'}",
            "the last step must stay Euler's (if s_next != 0: ... correct): the ODE in sigma divides by sigma, "
            "so its drift at sigma = 0 is 0 / 0",
        )
    expect_close(got, euler_last, "heun_step(drift, x, 0.5, 0.0), the last step", atol=1e-9)


def _flow_data(seed: int, n: int = 6) -> tuple[Tensor, Tensor, Tensor]:
    generator = torch.Generator().manual_seed(seed)
    x_0 = torch.rand(n, 1, 3, 3, generator=generator) * 2 - 1
    eps = torch.randn(n, 1, 3, 3, generator=generator)
    s = torch.rand(n, generator=generator)
    return x_0, eps, s


@grader("flow_interpolate")
def check_flow_interpolate(flow_interpolate) -> None:
    x_0, eps, s = _flow_data(0)
    with unchanged("flow_interpolate(x_0, eps, s)", x_0=x_0, eps=eps, s=s):
        out = flow_interpolate(x_0, eps, s)
    x_s, v = expect_pair(out, "flow_interpolate(x_0, eps, s)", "x_s, v")
    s4 = s.reshape(-1, 1, 1, 1)
    expect_close(
        x_s,
        (1 - s4) * x_0 + s4 * eps,
        "x_s of flow_interpolate(x_0, eps, s)",
        likely="x_s = (1 - s) x_0 + s eps, with s shaped (B, 1, 1, 1) (per_image) to scale each image",
        mistakes={
            "s runs the wrong way: s = 0 is the clean image and s = 1 the noise, x_s = (1 - s) x_0 + s eps": s4 * x_0
            + (1 - s4) * eps,
            "a variance-preserving path, not a straight one: x_s = (1 - s) x_0 + s eps, no square roots": x_t_of(
                x_0, eps, 1 - s4
            ),
        },
    )
    expect_close(
        v,
        eps - x_0,
        "v of flow_interpolate(x_0, eps, s)",
        likely="v = dx_s / ds = eps - x_0",
        mistakes={
            "the velocity's sign: x_s moves from x_0 (s = 0) to eps (s = 1), so v = dx_s / ds = eps - x_0": x_0 - eps,
            "the velocity is eps - x_0, not eps (eps is DDPM's target)": eps,
            "the velocity is eps - x_0, not x_0": x_0,
            "the velocity does not depend on s on a straight path: v = eps - x_0": s4 * (eps - x_0),
        },
    )


class _RecordingVelocity(_Strict):
    """A velocity model with one parameter, v = w x_s + s: records what the loss feeds it."""

    time_name = "s"

    def __init__(self, device: torch.device | str = "cpu"):
        super().__init__(None, (1, 4, 4), device)
        self.w = torch.nn.Parameter(torch.tensor(0.3, device=device))

    def output(self, images: Tensor, time: Tensor) -> Tensor:
        return self.w * images + time


@grader("flow_matching_loss", uses=("flow_interpolate",))
def check_flow_matching_loss(flow_matching_loss) -> None:
    torch.manual_seed(0)
    n = 4000
    x_0 = torch.rand(n, 1, 4, 4) * 1.6 - 0.8
    model = _RecordingVelocity()
    with unchanged("flow_matching_loss(model, x_0)", x_0=x_0):
        loss = flow_matching_loss(model, x_0)
    loss = expect_tensor(loss, "flow_matching_loss(model, x_0)", floating=True)
    expect(loss.ndim == 0, "flow_matching_loss should return a scalar.", "shape ()", f"shape {tuple(loss.shape)}")
    expect(
        loss.requires_grad,
        "flow_matching_loss's result carries no gradient to the model.",
        "a loss with requires_grad",
        "requires_grad=False",
        "compute the loss from model(x_s, s) without torch.no_grad() or .detach()",
    )
    expect(len(model.calls) == 1, "flow_matching_loss should call the model once.", "1 call", f"{len(model.calls)}")
    x_s, s = model.calls[0]
    s = expect_tensor(s, "the s flow_matching_loss passes to the model", shape=(n,), floating=True)
    expect(
        bool(((s >= 0) & (s <= 1)).all()),
        "The s flow_matching_loss passes to the model should lie in [0, 1].",
        "values in [0, 1]",
        f"values from {s.min().item():.4g} to {s.max().item():.4g}",
        "s ~ Uniform[0, 1] (torch.rand), passed to the model as it is (a FlowUnet scales it itself), not "
        "torch.randn or a step count",
    )
    distinct = s.unique().numel()
    expect(
        distinct > n // 2,
        "flow_matching_loss should draw one s per image, from the whole of [0, 1].",
        f"about {n} different values",
        f"{distinct} different values",
        "one s for the whole batch: draw s of shape (B,)"
        if distinct == 1
        else f"s takes only {distinct} values, a grid: s ~ Uniform[0, 1] (torch.rand(B)) can take any value",
    )
    # s ~ U[0, 1]: mean 1/2, variance 1/12
    expect_statistic(
        s.double().mean().item(),
        0.5,
        sampling_tolerance(math.sqrt(1 / 12), n),
        "the mean of s over the batch",
        likely="s ~ Uniform[0, 1]: torch.rand",
    )
    expect_statistic(
        s.double().var().item(),
        1 / 12,
        sampling_tolerance(math.sqrt(1 / 180), n),
        "the variance of s over the batch (1/12 for a uniform)",
        likely="s ~ Uniform[0, 1]: torch.rand, not a Beta, a logit-normal or a grid",
    )
    # the noise that x_s implies, eps = (x_s - (1 - s) x_0) / s, must be standard Gaussian
    s4 = s.double().reshape(-1, 1, 1, 1)
    keep = s > 0.05  # dividing by a tiny s would amplify float32 rounding
    eps = ((x_s.double() - (1 - s4) * x_0.double()) / s4)[keep]
    m = eps.numel()
    expect_statistic(
        eps.mean().item(),
        0.0,
        sampling_tolerance(1.0, m),
        "the mean of the noise eps = (x_s - (1 - s) x_0) / s in what the model was given",
        likely="x_s = (1 - s) x_0 + s eps with eps ~ N(0, I) (torch.randn_like): s = 0 is the image, 1 the noise",
    )
    expect_statistic(
        eps.var().item(),
        1.0,
        6 * math.sqrt(2 / (m - 1)),
        "the variance of the noise eps = (x_s - (1 - s) x_0) / s in what the model was given",
        likely="x_s = (1 - s) x_0 + s eps with eps ~ N(0, I): s = 0 is the image and 1 the noise; eps from "
        "torch.randn_like, not torch.rand",
    )
    # the loss's value, || v - v_theta ||^2 with v = eps - x_0, rebuilt from what the model was given
    with torch.no_grad():
        prediction = 0.3 * x_s.double() + s4
        noise = (x_s.double() - (1 - s4) * x_0.double()) / s4
        velocity = noise - x_0.double()
        expected = ((prediction - velocity) ** 2).mean().item()
    mistakes = {
        "the target is eps - x_0, the velocity; not eps (DDPM's target)": ((prediction - noise) ** 2).mean().item(),
        "the velocity's sign: v = eps - x_0": ((prediction + velocity) ** 2).mean().item(),
        "the target is the velocity eps - x_0, not x_0": ((prediction - x_0.double()) ** 2).mean().item(),
    }
    if abs(loss.item() - expected * x_0.numel()) < 1e-3 * expected * x_0.numel():
        fail(
            "flow_matching_loss(model, x_0) is the mean squared error times the number of pixels.",
            f"{expected:.4f}",
            f"{loss.item():.4f}",
            "the loss is summed, not averaged over every pixel of every image: F.mse_loss, or .mean()",
        )
    expect_statistic(
        loss.item(),
        expected,
        1e-3 * max(1.0, abs(expected)),
        "flow_matching_loss(model, x_0): the mean squared error between the model's output and the velocity",
        likely="F.mse_loss(model(x_s, s), eps - x_0)",
        mistakes=mistakes,
    )
    # On the test device: in training x_0 and the model are on a GPU, and s and eps must be made there too.
    model = _RecordingVelocity(device=META)
    x_0 = torch.rand(8, 1, 4, 4, device=META)
    loss = run_on_meta(partial(flow_matching_loss, model, x_0), "flow_matching_loss(model, x_0)")
    if loss is not NOT_ON_META:
        expect_on_device(loss, META, "the loss flow_matching_loss returns")


@grader("flow_predictions")
def check_flow_predictions(flow_predictions) -> None:
    x_0, eps, s = _flow_data(3, n=8)
    s[:2] = torch.tensor([0.0, 0.9])  # the image itself, and a point near the noise
    s4 = s.reshape(-1, 1, 1, 1)
    x_s = (1 - s4) * x_0 + s4 * eps  # the path and its velocity, restated: this grader judges flow_interpolate's
    v = eps - x_0  # formula as much as the student's
    out = call("flow_predictions(x_s, v, s)", flow_predictions, x_s, v, s)
    x0_hat, eps_hat = expect_pair(out, "flow_predictions(x_s, v, s)", "x0_hat, eps_hat")
    expect_tensor(x0_hat, "x0_hat of flow_predictions(x_s, v, s)", shape=tuple(x_s.shape), floating=True)
    expect_tensor(eps_hat, "eps_hat of flow_predictions(x_s, v, s)", shape=tuple(x_s.shape), floating=True)
    swapped = "the pair is returned in the wrong order: (x0_hat, eps_hat), the image first"
    expect_close(
        x0_hat,
        x_0,
        "x0_hat of flow_predictions(x_s, v, s), with the true velocity",
        likely="x0_hat = x_s - s v, each image with its own s (per_image)",
        mistakes={
            swapped: eps,
            "the velocity's sign: v = eps - x_0 points from the image to the noise, so x0_hat = x_s - s v": x_s
            + s4 * v,
            "1 - s in place of s: s = 0 is the image, so the image lies s v behind x_s, x0_hat = x_s - s v": (
                x_s - (1 - s4) * v
            ),
        },
    )
    expect_close(
        eps_hat,
        eps,
        "eps_hat of flow_predictions(x_s, v, s), with the true velocity",
        likely="eps_hat = x_s + (1 - s) v, each image with its own s (per_image)",
        mistakes={
            "the velocity's sign: v = eps - x_0 points towards the noise, so eps_hat = x_s + (1 - s) v": x_s
            - (1 - s4) * v,
            "s in place of 1 - s: the noise is 1 - s of the way further on, eps_hat = x_s + (1 - s) v": x_s + s4 * v,
            "eps_hat is x0_hat + v, not v itself": v,
        },
    )
    # A velocity that is no model's truth: the same two formulas still hold, as they do for a network's output.
    other = torch.randn(x_s.shape, generator=torch.Generator().manual_seed(4))
    x0_hat, eps_hat = call("flow_predictions(x_s, v, s)", flow_predictions, x_s, other, s)
    expect_close(
        x0_hat,
        x_s - s4 * other,
        "x0_hat of flow_predictions(x_s, v, s) with a predicted velocity",
        likely="x0_hat = x_s - s v from the v given, not from anything else",
    )
    expect_close(
        eps_hat,
        x_s + (1 - s4) * other,
        "eps_hat of flow_predictions(x_s, v, s) with a predicted velocity",
        likely="eps_hat = x_s + (1 - s) v from the v given",
    )
    # On a GPU: x_s, v and s live there, and so must both predictions.
    expect_runs_on_meta("flow_predictions(x_s, v, s)", flow_predictions, x_s, v, s)


class _LinearVelocity(_Strict):
    """v_theta(x, s) = -0.8 x + 0.5 s: a velocity model with a known Euler and Heun path. Records each call."""

    time_name = "s"

    def __init__(self, device: torch.device | str = "cpu"):
        super().__init__(None, (1, 3, 3), device)

    def output(self, images: Tensor, time: Tensor) -> Tensor:
        return -0.8 * images + 0.5 * time


def _flow_path(x: Tensor, steps: int, method: str) -> Tensor:
    """The reference Euler or Heun path of _LinearVelocity from s = 1 to 0, in float64."""
    x = x.double()
    times = [1 - i / steps for i in range(steps + 1)]

    def v(x, s):
        return -0.8 * x + 0.5 * s

    for s, s_next in zip(times[:-1], times[1:]):
        d = v(x, s)
        x_euler = x + (s_next - s) * d
        x = x_euler if method == "euler" or s_next == 0 else x + (s_next - s) * (d + v(x_euler, s_next)) / 2
    return x


@grader("flow_sample", uses=("heun_step",))
def check_flow_sample(flow_sample) -> None:
    torch.manual_seed(0)
    x_1 = torch.randn(3, 1, 3, 3)
    # 4 steps of 1/4 add up exactly; 3 and 10 steps of 1/3 and 1/10 do not, so a time kept by adding steps drifts
    for method, steps in (("euler", 4), ("heun", 4), ("euler", 3), ("heun", 10)):
        calls = steps if method == "euler" else 2 * steps - 1
        model = _LinearVelocity()
        call = f'flow_sample(model, 3, {steps}, method="{method}", x_1=x_1)'
        with unchanged(call, x_1=x_1):
            got = flow_sample(model, 3, steps, method=method, x_1=x_1)
        times = [float(t.flatten()[0]) for _, t in model.calls]
        expect(
            len(times) == calls,
            f"{call} should call the model {calls} times.",
            f"{calls} calls ({'one per step' if method == 'euler' else 'two per step, one at the last'})",
            f"{len(times)} calls at s = {[round(t, 3) for t in times]}",
            "Euler's step where Heun's was asked: method=\"heun\" takes heun_step at every step"
            if method == "heun" and len(times) == steps
            else "Heun needs no second call at the last step (heun_step keeps Euler there)"
            if method == "heun" and len(times) == calls + 1
            else "the times must be exactly s_i = 1 - i / steps, ending at 0: a time kept by subtracting 1 / steps "
            "again and again ends a hair away from 0 (torch.linspace(1, 0, steps + 1))"
            if len(times) > calls
            else None,
        )
        expect(
            times[0] == 1.0,
            f"{call} should start at s = 1 (the noise).",
            "first call at s = 1",
            f"first call at s = {times[0]:.3g}",
            "the path runs from s = 1 (noise) down to s = 0 (images): times 1, 1 - 1/steps, ..., 0",
        )
        expect(
            not any(model.grad_enabled) and not getattr(got, "requires_grad", False),
            f"{call} should run without gradients.",
            "torch.is_grad_enabled() == False in every model call",
            "gradients were on",
            "keep the @torch.no_grad() above flow_sample: a sampler needs no gradients, and keeping them costs memory",
        )
        expected = _flow_path(x_1, steps, method)
        expect_close(
            got,
            expected.float(),
            call,
            atol=1e-5,
            likely="x = x + (s_next - s) v_theta(x, s), with s_next < s: the step is negative",
            mistakes={
                "the step's sign: going from s to s_next < s, x moves by (s_next - s) v": _wrong_sign(x_1, steps),
                **(
                    {"Euler's step where Heun's was asked": _flow_path(x_1, steps, "euler").float()}
                    if method == "heun"
                    else {}
                ),
            },
        )
        expect_dtype(got, torch.float32, call, likely="keep x float32, as x_1 and the model's output are")
    # On the test device: in the course the model and the noise live on a GPU, and each s must be made there too.
    for method in ("euler", "heun"):
        model = _LinearVelocity(device=META)
        call = f'flow_sample(model, 3, 3, method="{method}", x_1=x_1)'
        got = run_on_meta(partial(flow_sample, model, 3, 3, method=method, x_1=x_1.to(META)), call)
        if got is not NOT_ON_META:
            expect_on_device(got, META, f"the images {call} returns")


def _wrong_sign(x: Tensor, steps: int) -> Tensor:
    x = x.double()
    for i in range(steps):
        s = 1 - i / steps
        x = x + (1 / steps) * (-0.8 * x + 0.5 * s)
    return x.float()


TINY = part2.UnetConfig(image_shape=(1, 8, 8), channels=8, dim_mults=(1, 2), attention_levels=())


@grader("FlowUnet", expects="class")
def check_flow_unet(FlowUnet) -> None:
    torch.manual_seed(0)
    reference = ref.FlowUnet(TINY).eval()
    model = FlowUnet(TINY)
    expect(
        model.noise_schedule is None,
        "FlowUnet(config) should be built without a noise schedule.",
        "noise_schedule None",
        f"{type(model.noise_schedule).__name__}",
        "flow matching has no betas: build the U-Net as Unet(config), with none",
    )
    try:
        device = model.device
    except ValueError:
        device = None
    expect(
        device is not None,
        "FlowUnet(config).device should name where its weights are; it asks for a noise schedule instead.",
        "the device of its weights",
        "ValueError: ... has no noise schedule",
        "keep `needs_schedule = False` in the class, as given: a flow model has no schedule, and the samplers and "
        "the training loop read model.device",
    )
    copy_weights(reference, model, "FlowUnet")
    model.eval()
    x = torch.randn(5, *TINY.image_shape)
    s = torch.tensor([0.0, 0.01372, 0.25049, 0.70031, 1.0])  # off the grid of 1/1000
    with torch.no_grad():
        got = model(x, s)
        expected = reference(x, s)
        unscaled = part2.Unet.forward(reference, x, s)
        rounded = part2.Unet.forward(reference, x, (s * ref.FLOW_TIME_SCALE).round())
    expect_close(
        got,
        expected,
        "FlowUnet(config)(x_s, s)",
        atol=1e-5,
        likely="the U-Net's forward with s * FLOW_TIME_SCALE in place of t",
        mistakes={
            "s goes to the time embedding unscaled: multiply it by FLOW_TIME_SCALE (1000), the range of DDPM's t": (
                unscaled
            ),
            "s * FLOW_TIME_SCALE is rounded to an integer: the sinusoidal embedding takes fractional times": rounded,
        },
    )
