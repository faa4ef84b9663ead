"""Graders for Part 1: the forward process, the noise schedule, the MLP denoiser, training and sampling.

Each `check_<step>` takes your function or class and compares it with the reference in `solutions/part1.py`.
Random steps are checked by the statistics of many draws against their exact values (with a tolerance of six
standard errors), so any correct way of drawing the noise passes. Schedules with large betas make an off-by-one in
t show up clearly. Where a common mistake gives a recognisable answer, the failure names it.
"""

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from graders.core import (
    copy_weights,
    expect,
    expect_close,
    expect_statistic,
    expect_tensor,
    fail,
    grader,
    n_params,
)
from solutions import part1 as ref
from utils.datasets.images import gradient_images, normalize_img
from utils.engine.model import DiffusionModel, TinyDiffuserConfig, TrainConfig
from utils.engine.run_log import RunLog

# Large betas: with T = 6, alpha_bar falls from 0.9 to about 0.1, so alpha_bar_t and alpha_bar_{t+1} differ a lot.
BIG_BETAS = torch.tensor([0.1, 0.2, 0.3, 0.4, 0.5, 0.6])


def schedule_with(betas: Tensor) -> ref.NoiseSchedule:
    """A reference NoiseSchedule whose tables hold `betas` instead of the linear schedule."""
    schedule = ref.NoiseSchedule(len(betas))
    schedule.betas.copy_(betas)
    schedule.alphas.copy_(1 - betas)
    schedule.alpha_bars.copy_(torch.cumprod(1 - betas, dim=0))
    return schedule


def alpha_bar_after(betas: Tensor, n: int) -> float:
    """alpha_bar_n = prod_{s=1..n} (1 - beta_s), with alpha_bar_0 = 1."""
    return float(torch.prod(1 - betas[:n].double()))


def moments(x: Tensor) -> tuple[float, float, float]:
    """Mean, variance and kurtosis (4th standardised moment; 3 for a Gaussian, 1.8 for a uniform) of all entries."""
    x = x.detach().double().flatten()
    mean = x.mean()
    var = x.var()
    kurtosis = ((x - mean) ** 4).mean() / var**2
    return mean.item(), var.item(), kurtosis.item()


def var_tolerance(var: float, n: int) -> float:
    """Six standard errors of a sample variance of n Gaussian draws: sd(var_hat) = var * sqrt(2 / (n - 1))."""
    return 6 * var * math.sqrt(2 / (n - 1))


# --------------------------------------------------------------------------------------------------------------------


@grader("linear_schedule")
def check_linear_schedule(linear_schedule) -> None:
    betas = expect_tensor(linear_schedule(10), "linear_schedule(10)", shape=(10,), floating=True)
    expect(betas.dtype == torch.float32, "linear_schedule(10) should be float32, torch's default float dtype.",
           "torch.float32", str(betas.dtype), "a float64 table would turn every image it touches into float64")
    expected = torch.linspace(1e-4, 0.02, 10)
    expect_close(
        betas, expected, "linear_schedule(10)", atol=1e-7, rtol=1e-5,
        likely="beta_1 = min_noise and beta_T = max_noise, evenly spaced in between (torch.linspace)",
        mistakes={
            "the schedule is reversed: noise should grow with t, from min_noise to max_noise": expected.flip(0),
            "T + 1 points with the last dropped: linspace(min, max, T) already has T points":
                torch.linspace(1e-4, 0.02, 11)[:-1],
            "T + 1 points with the first dropped: linspace(min, max, T) already has T points":
                torch.linspace(1e-4, 0.02, 11)[1:],
        },
    )
    custom = linear_schedule(4, 0.1, 0.4)
    expect_close(custom, torch.tensor([0.1, 0.2, 0.3, 0.4]), "linear_schedule(4, min_noise=0.1, max_noise=0.4)",
                 atol=1e-6, likely="min_noise and max_noise are ignored: use the arguments, not fixed numbers")
    long = linear_schedule(1000)
    expect(abs(long[0].item() - 1e-4) < 1e-9 and abs(long[-1].item() - 0.02) < 1e-9,
           "linear_schedule(1000) should start at 1e-4 and end at 0.02 (the DDPM paper's values).",
           "beta_1 = 0.0001, beta_T = 0.02", f"beta_1 = {long[0].item():.6g}, beta_T = {long[-1].item():.6g}")


# --------------------------------------------------------------------------------------------------------------------


def _check_forward_process(q, name: str, loop: bool) -> None:
    """Shared by q_eq2 and q_eq4: both must give x_n ~ N(sqrt(alpha_bar_n) x_0, (1 - alpha_bar_n) I)."""
    torch.manual_seed(0)
    betas = BIG_BETAS.clone()
    # 200,000 pixels, half at +1 and half at -1, so the slope of x_n on x_0 and the noise are both measurable.
    x = torch.cat([torch.ones(100_000), -torch.ones(100_000)]).reshape(400, 500)
    x_before = x.clone()
    n = x.numel()

    for steps in (1, 3, 6):
        out = q(x, steps, betas)
        expect_tensor(out, f"{name}(x, {steps}, betas)", shape=tuple(x.shape), floating=True)
        expect(torch.equal(x, x_before), f"{name} changed its input x in place.", likely="write x = ... + ..., not x += ... or x.mul_(...)")
        alpha_bar = alpha_bar_after(betas, steps)
        # Fit x_n = slope * x_0 + residual: the slope is sqrt(alpha_bar_n), the residual is N(0, 1 - alpha_bar_n).
        slope = ((out[:200].mean() - out[200:].mean()) / 2).item()
        residual = out - slope * x
        mean, var, kurtosis = moments(residual)
        what = f"{name}(x, {steps}, betas) with betas = {[round(b, 2) for b in betas.tolist()]}"
        expect_statistic(
            slope, math.sqrt(alpha_bar), 6 * math.sqrt((1 - alpha_bar) / n),
            f"{what}: how much of x_0 is left, the factor sqrt(alpha_bar_n) in front of x_0, is off.",
            "x_n = sqrt(alpha_bar_n) x_0 + sqrt(1 - alpha_bar_n) eps, with alpha_bar_n the product of the first n alphas",
            mistakes={
                f"off by one step: you applied {steps + 1} steps (alpha_bar_{steps + 1})": math.sqrt(alpha_bar_after(betas, steps + 1)),
                f"off by one step: you applied {steps - 1} steps (alpha_bar_{steps - 1})": math.sqrt(alpha_bar_after(betas, steps - 1)),
                "x_0 is scaled by sqrt(alpha_n) of the last step only, not sqrt(alpha_bar_n)": math.sqrt(1 - betas[steps - 1].item()),
                "x_0 is scaled by alpha_bar_n, not its square root": alpha_bar,
            },
        )
        expect_statistic(mean, 0.0, 6 * math.sqrt((1 - alpha_bar) / n),
                         f"{what}: the noise should have mean 0.",
                         "torch.rand draws from U(0, 1), mean 0.5: Gaussian noise is torch.randn / randn_like")
        wrong_vars = {
            f"off by one step: the noise of {steps + 1} steps": 1 - alpha_bar_after(betas, steps + 1),
            f"off by one step: the noise of {steps - 1} steps": 1 - alpha_bar_after(betas, steps - 1),
            "uniform noise scaled to [-1, 1]: Gaussian noise is torch.randn / randn_like": (1 - alpha_bar) / 3,
        }
        if loop:
            wrong_vars["beta used as a standard deviation: the noise is sqrt(beta_t) * eps, since beta_t is a variance"] = _beta_as_std_var(betas, steps)
            wrong_vars["one noise tensor reused at every step: draw fresh noise inside the loop"] = _same_noise_var(betas, steps)
        else:
            wrong_vars["variance and standard deviation mixed up: the noise is sqrt(1 - alpha_bar) * eps"] = (1 - alpha_bar) ** 2
        expect_statistic(var, 1 - alpha_bar, var_tolerance(1 - alpha_bar, n),
                         f"{what}: the variance of the noise in x_n should be 1 - alpha_bar_n.",
                         "x_n = sqrt(alpha_bar_n) x_0 + sqrt(1 - alpha_bar_n) eps, eps ~ N(0, I)", mistakes=wrong_vars)
        expect_statistic(kurtosis, 3.0, 0.1, f"{what}: the noise should be Gaussian (kurtosis 3).",
                         "the noise is not Gaussian: use torch.randn / randn_like, not torch.rand",
                         mistakes={"uniform noise (kurtosis 1.8): use torch.randn / randn_like, not torch.rand": 1.8})
    same = q(x, 0, betas)
    expect_tensor(same, f"{name}(x, 0, betas)", shape=tuple(x.shape), floating=True)
    expect_close(same, x, f"{name}(x, 0, betas), zero steps of noise", atol=1e-6,
                 likely="with num_steps = 0 the image comes back unchanged; alpha_bar_0 = 1 (the empty product)."
                 + ("" if loop else " Note that alpha_bars[num_steps - 1] wraps around to the last entry at 0."))
    again = q(x, 3, betas)
    expect(not torch.equal(again, q(x, 3, betas)), f"{name} gave the same output twice: it should draw new noise on every call.",
           likely="a fixed seed (torch.manual_seed) inside the function, or noise created once outside it")


def _beta_as_std_var(betas: Tensor, steps: int) -> float:
    var = 0.0
    for beta in betas[:steps].double().tolist():
        var = (1 - beta) * var + beta**2
    return var


def _same_noise_var(betas: Tensor, steps: int) -> float:
    # x_n = prod(sqrt(alpha)) x_0 + (sum_k sqrt(beta_k) prod_{j>k} sqrt(alpha_j)) eps: the coefficients add, not their squares.
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
    schedule = NoiseSchedule(10, "cpu")
    expect(isinstance(schedule, nn.Module), "NoiseSchedule should be an nn.Module.", "a subclass of nn.Module",
           type(schedule).__mro__[1].__name__, "class NoiseSchedule(nn.Module) and super().__init__() first")
    reference = ref.NoiseSchedule(10, "cpu")
    buffers = dict(schedule.named_buffers())
    for name in ("betas", "alphas", "alpha_bars"):
        if name not in buffers:
            plain = isinstance(getattr(schedule, name, None), Tensor)
            fail(f"NoiseSchedule has no buffer named {name!r}.", "buffers betas, alphas, alpha_bars",
                 f"buffers {sorted(buffers) or 'none'}",
                 f"self.{name} is a plain attribute: it is not saved in state_dict() and .to() does not move it. "
                 f'Use self.register_buffer("{name}", ...)' if plain else
                 f'register it with self.register_buffer("{name}", tensor)')
    cumsum = torch.cumsum(reference.alphas, 0)
    shifted = torch.cat([torch.ones(1), reference.alpha_bars[:-1]])
    expect_close(schedule.betas, reference.betas, "NoiseSchedule(10).betas", atol=1e-7,
                 likely="betas should be linear_schedule(max_steps) with its default noise levels",
                 mistakes={"the betas are reversed": reference.betas.flip(0)})
    expect_close(schedule.alphas, reference.alphas, "NoiseSchedule(10).alphas", atol=1e-7,
                 likely="alpha_t = 1 - beta_t", mistakes={"alphas hold sqrt(1 - beta_t): store alpha_t = 1 - beta_t itself": reference.alphas.sqrt()})
    expect_close(schedule.alpha_bars, reference.alpha_bars, "NoiseSchedule(10).alpha_bars", atol=1e-7,
                 likely="alpha_bar_t = alpha_1 * ... * alpha_t: torch.cumprod(alphas, dim=0)",
                 mistakes={
                     "off by one: alpha_bars starts at 1 (alpha_bar_0). Entry t - 1 must hold alpha_bar_t, so "
                     "alpha_bars[0] = alpha_1 = 0.9999": shifted,
                     "a cumulative sum: alpha_bar is a product, torch.cumprod": cumsum,
                 })
    expect(len(schedule) == 10, "len(NoiseSchedule(10)) should be T = 10.", "10", str(len(schedule)))

    for method in ("beta", "alpha", "alpha_bar"):
        table = getattr(reference, method + "s")  # betas, alphas, alpha_bars
        for t in (1, 4, 10):
            try:
                value = getattr(schedule, method)(t)
            except IndexError:
                fail(f"NoiseSchedule.{method}({t}) raised IndexError.", f"{method}_{t}, entry {t - 1} of the table",
                     "IndexError", "t runs over 1..T, so step t sits at index t - 1, and t = T is valid")
            expect_close(torch.as_tensor(value).float().reshape(()), table[t - 1], f"NoiseSchedule.{method}({t})",
                         atol=1e-7, mistakes={f"off by one: {method}(t) returned the entry of step t + 1; "
                                              f"step t is at index t - 1": table[min(t, 9)]} if t < 10 else None,
                         likely=f"{method}(t) for t in 1..T is entry t - 1 of the table")
        t = torch.tensor([1, 5, 10, 3])
        values = getattr(schedule, method)(t)
        expect_close(values, table[t - 1], f"NoiseSchedule.{method}(tensor([1, 5, 10, 3]))", atol=1e-7,
                     likely="index the table with the tensor: table[t - 1] gives one value per t, shape (B,)")
    expect(abs(float(schedule.alpha_bar(1)) - 0.9999) < 1e-7, "alpha_bar(1) should be alpha_1 = 1 - 1e-4 = 0.9999.",
           "0.9999", f"{float(schedule.alpha_bar(1)):.7f}")

    moved = NoiseSchedule(10, "cpu").to(torch.float64)
    expect(moved.alpha_bars.dtype == torch.float64, "NoiseSchedule(10).to(torch.float64) should convert its tables.",
           "float64 buffers", str(moved.alpha_bars.dtype), "the tables are not registered buffers")
    try:
        on_meta = NoiseSchedule(4, "meta")
    except Exception:  # some ops have no meta kernel; the device is then checked on the CPU only
        on_meta = None
    if on_meta is not None:
        expect(on_meta.alpha_bars.device.type == "meta", "NoiseSchedule(max_steps, device) should build its tables on `device`.",
               "buffers on the device passed in", f"buffers on {on_meta.alpha_bars.device}",
               "the device argument is ignored: create the tables on it, e.g. linear_schedule(max_steps).to(device)")


# --------------------------------------------------------------------------------------------------------------------


@grader("noise_img")
def check_noise_img(noise_img) -> None:
    torch.manual_seed(0)
    schedule = schedule_with(BIG_BETAS)
    T = len(schedule)
    generator = torch.Generator().manual_seed(1)
    img = torch.rand(6000, 1, 2, 2, generator=generator) * 2 - 1
    img_before = img.clone()
    result = noise_img(img, schedule)
    expect(isinstance(result, tuple) and len(result) == 3, "noise_img should return three things.",
           "(num_steps, noise, noised)", f"{type(result).__name__} of length {len(result) if hasattr(result, '__len__') else '?'}")
    num_steps, noise, noised = result
    expect_tensor(num_steps, "num_steps (the first thing returned)", shape=(6000,), floating=False)
    expect_tensor(noise, "noise (the second thing returned)", shape=tuple(img.shape), floating=True)
    expect_tensor(noised, "noised (the third thing returned)", shape=tuple(img.shape), floating=True)
    expect(torch.equal(img, img_before), "noise_img changed the images it was given.", likely="write new tensors; don't modify img in place")

    lo, hi = int(num_steps.min()), int(num_steps.max())
    expect(lo >= 1, "t should never be 0: t counts steps of noise, from 1 to T.", "t in {1, ..., T}", f"smallest t = {lo}",
           "torch.randint(0, T, ...) gives 0..T-1; use torch.randint(1, T + 1, ...)")
    expect(hi <= T, f"t should never exceed T = {T}.", f"t in {{1, ..., {T}}}", f"largest t = {hi}")
    expect(hi == T, f"t never reached T = {T} in 6000 draws.", f"t in {{1, ..., {T}}}, T included", f"largest t = {hi}",
           "torch.randint's upper bound is exclusive: torch.randint(1, T + 1, ...)")
    counts = torch.bincount(num_steps, minlength=T + 1)[1:].double()
    p = 1 / T
    tolerance = 6 * math.sqrt(6000 * p * (1 - p))
    expect(bool(((counts - 6000 * p).abs() <= tolerance).all()), "t should be uniform over {1, ..., T}.",
           f"about {6000 * p:.0f} of each", str(counts.long().tolist()), "draw t with torch.randint, one per image")

    mean, var, kurtosis = moments(noise)
    n = noise.numel()
    expect_statistic(mean, 0.0, 6 / math.sqrt(n), "the noise should have mean 0.",
                     mistakes={"uniform noise from torch.rand (mean 0.5): use torch.randn_like": 0.5})
    expect_statistic(var, 1.0, var_tolerance(1.0, n), "the returned noise should be standard Gaussian, variance 1.",
                     "return the unscaled noise eps, not sqrt(1 - alpha_bar) * eps: eps is what the model learns to predict",
                     mistakes={"uniform noise: use torch.randn_like, not torch.rand_like": 1 / 12,
                               "uniform noise in [-1, 1]: use torch.randn_like": 1 / 3})
    expect_statistic(kurtosis, 3.0, 0.15, "the noise should be Gaussian (kurtosis 3).",
                     mistakes={"uniform noise: use torch.randn_like, not torch.rand_like": 1.8})

    alpha_bar = schedule.alpha_bars[num_steps - 1].reshape(-1, 1, 1, 1)
    expected = alpha_bar.sqrt() * img + (1 - alpha_bar).sqrt() * noise
    shifted = schedule.alpha_bars[num_steps.clamp(max=T - 1)].reshape(-1, 1, 1, 1)
    alpha_only = schedule.alphas[num_steps - 1].reshape(-1, 1, 1, 1)
    expect_close(
        noised, expected, "noised, compared with sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps from your t and eps",
        atol=1e-5,
        likely="eq. 4 with alpha_bar_t of each image's own t, broadcast over (C, H, W)",
        mistakes={
            "off by one: alpha_bar_{t+1} used; step t is at index t - 1 (noise_schedule.alpha_bar(t) does this)":
                torch.where(num_steps.reshape(-1, 1, 1, 1) < T, shifted.sqrt() * img + (1 - shifted).sqrt() * noise, expected),
            "alpha_t used where eq. 4 needs alpha_bar_t": alpha_only.sqrt() * img + (1 - alpha_only).sqrt() * noise,
            "variances used as scales: x_t = sqrt(alpha_bar) x_0 + sqrt(1 - alpha_bar) eps takes square roots":
                alpha_bar * img + (1 - alpha_bar) * noise,
        },
    )
    limited, _, _ = noise_img(img, schedule, max_steps=3)
    expect(int(limited.min()) >= 1 and int(limited.max()) == 3, "noise_img(img, schedule, max_steps=3) should draw t from {1, 2, 3}.",
           "t from 1 to 3", f"t from {int(limited.min())} to {int(limited.max())}", "use max_steps when it is given, else len(noise_schedule)")


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
    x_t = alpha_bar.sqrt() * x_0 + (1 - alpha_bar).sqrt() * noise
    got = reconstruct(x_t, noise, t, schedule)
    expect_close(
        got, x_0, "reconstruct(x_t, eps, t, schedule) should give back x_0", atol=1e-4,
        likely="x_0 = (x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t), with each image's own t",
        mistakes={
            "the division by sqrt(alpha_bar_t) is missing": x_t - (1 - alpha_bar).sqrt() * noise,
            "multiplied by sqrt(alpha_bar_t) where eq. 4 solved for x_0 divides": (x_t - (1 - alpha_bar).sqrt() * noise) * alpha_bar.sqrt(),
            "the noise is added instead of subtracted": (x_t + (1 - alpha_bar).sqrt() * noise) / alpha_bar.sqrt(),
        },
    )


# --------------------------------------------------------------------------------------------------------------------


@grader("TinyDiffuser", expects="class")
def check_tiny_diffuser(TinyDiffuser) -> None:
    config = TinyDiffuserConfig(image_shape=(3, 4, 5), hidden_size=16, max_steps=50)
    model = TinyDiffuser(config)
    expect(isinstance(model, DiffusionModel), "TinyDiffuser should subclass DiffusionModel.",
           "class TinyDiffuser(DiffusionModel)", type(model).__mro__[1].__name__)
    expect(tuple(getattr(model, "image_shape", ())) == (3, 4, 5), "TinyDiffuser should set self.image_shape = config.image_shape.",
           "(3, 4, 5)", repr(getattr(model, "image_shape", None)), "sample() reads model.image_shape to know what to generate")
    torch.manual_seed(3)
    reference = ref.TinyDiffuser(config)
    expected_count = n_params(reference)
    got_count = n_params(model)
    if got_count != expected_count:
        fail("TinyDiffuser has the wrong number of parameters.", f"{expected_count}", f"{got_count}",
             "the first Linear takes C*H*W + 1 inputs: you forgot to append t" if got_count == expected_count - 16 else
             "Linear(C*H*W + 1, hidden_size) -> ReLU -> Linear(hidden_size, C*H*W)")
    copy_weights(reference, model, "TinyDiffuser")
    images = torch.randn(8, 3, 4, 5)
    t = torch.tensor([1, 7, 13, 25, 31, 40, 49, 50])
    got = model(images, t)
    expect_tensor(got, "TinyDiffuser(images (8, 3, 4, 5), t (8,))", shape=(8, 3, 4, 5), floating=True)
    expected = reference(images, t)
    pixels = images.reshape(8, -1)
    layers = reference.model
    expect_close(
        got, expected, "TinyDiffuser's output with the reference's weights", atol=1e-5,
        likely="flatten each image, append t / max_steps as one extra feature, Linear -> ReLU -> Linear, reshape to (B, C, H, W)",
        mistakes={
            "t is appended unscaled: divide it by config.max_steps so it lies in (0, 1]":
                layers(torch.cat([pixels, t[:, None].float()], 1)).reshape(8, 3, 4, 5),
            "t is put before the pixels: append it after them": layers(torch.cat([t[:, None] / 50, pixels], 1)).reshape(8, 3, 4, 5),
            "t is scaled by (max_steps - 1) or shifted: the input is t / max_steps":
                layers(torch.cat([pixels, (t[:, None] - 1) / 50], 1)).reshape(8, 3, 4, 5),
        },
    )
    expect(not torch.allclose(model(images, torch.full((8,), 1)), model(images, torch.full((8,), 50))),
           "TinyDiffuser gives the same output for t = 1 and t = 50.", likely="t never reaches the network")


# --------------------------------------------------------------------------------------------------------------------


def _noise_prediction_error(model: DiffusionModel, images: Tensor, seed: int = 0) -> float:
    """Mean squared error of the model's noise prediction on `images`, noised by the reference, over 4 draws."""
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    schedule = ref.NoiseSchedule(len(model.noise_schedule))
    total = 0.0
    with torch.no_grad():
        for _ in range(4):
            t, noise, x_t = ref.noise_img(images, schedule)
            total += F.mse_loss(model(x_t, t), noise).item()
    torch.random.set_rng_state(generator_state)
    return total / 4


# Measured on the toy task below: the reference's trained TinyDiffuser predicts the noise with an MSE of about 0.26;
# untrained, about 1; trained to predict x_0 instead of the noise, 1.08; trained to predict x_t, 0.51.
TRAIN_PASS_MSE = 0.4


def train_setup() -> tuple[TinyDiffuserConfig, TrainConfig, Tensor, Tensor]:
    """The toy task `train` is graded on: 3x4x5 gradients, T = 100, a few hundred Adam steps on the CPU."""
    images = normalize_img(gradient_images(2560, (3, 4, 5), seed=0))
    model_config = TinyDiffuserConfig(image_shape=(3, 4, 5), hidden_size=256, max_steps=100)
    train_config = TrainConfig(epochs=30, lr=2e-3, batch_size=64, max_steps=100, device="cpu", progress=False, seed=0)
    return model_config, train_config, images[:2048], images[2048:]


@grader("train", time_limit=300)  # trains a small model: minutes allowed, not seconds
def check_train(train) -> None:
    model_config, config, trainset, testset = train_setup()
    torch.manual_seed(0)
    model = ref.TinyDiffuser(model_config)
    untrained = {k: v.clone() for k, v in model.state_dict().items()}
    log = RunLog()
    trainset_before = trainset.clone()
    result = train(model, config, trainset, testset, log=log)
    expect(isinstance(result, DiffusionModel), "train should return the trained model.", "the model", type(result).__name__)
    expect(torch.equal(trainset, trainset_before), "train changed the training images it was given.")
    schedule = getattr(result, "noise_schedule", None)
    expect(schedule is not None, "train should attach its NoiseSchedule to the model (model.noise_schedule = ...).",
           "model.noise_schedule set", "None", "sample() reads model.noise_schedule; without it a trained model cannot sample")
    expect(len(schedule) == config.max_steps, "model.noise_schedule should have T = config.max_steps steps.",
           str(config.max_steps), str(len(schedule)))
    expect_close(schedule.alpha_bars.cpu(), ref.NoiseSchedule(config.max_steps).alpha_bars, "model.noise_schedule.alpha_bars",
                 atol=1e-6, likely="train builds NoiseSchedule(config.max_steps, device): check_noise_schedule first")
    changed = any(not torch.equal(untrained[k], v.cpu()) for k, v in result.state_dict().items() if k in untrained)
    expect(changed, "train did not change the model's weights.", likely="optimizer.step() is never called, or the optimizer "
           "holds parameters of another model")
    losses = log.history.get("loss", [])
    expect(len(losses) > 0, "train logged no loss.", "log.log(step, loss=...) after every optimizer step", "nothing under 'loss'",
           "the notebook draws the loss curve from the log")
    expect("eval_loss" in log.history, "train logged no eval_loss although a testset was given.",
           "log.log(step, eval_loss=...) after each epoch", f"keys {sorted(log.history)}", "use the given eval_loss(model, testset, batch_size)")
    expect(len(log.images) > 0, "train logged no reconstructions although a testset was given.",
           likely="call the given log_reconstructions(model, testset[:config.n_images_to_log], log, step) after each epoch")
    error = _noise_prediction_error(result.cpu(), testset)
    if error > TRAIN_PASS_MSE:
        fail(
            "after training, the model predicts the noise in held-out images badly.",
            f"noise-prediction MSE below {TRAIN_PASS_MSE} (the reference reaches about 0.26; untrained gives about 1)",
            f"{error:.3f}",
            "the loss must compare the model's output with the noise eps, not with the image x_0 or x_t; "
            "check that the model gets (x_t, t), that optimizer.zero_grad() runs every step, and that "
            "noise_img and NoiseSchedule pass their checks",
        )
    exploding = TrainConfig(epochs=1, lr=1e30, batch_size=64, max_steps=100, device="cpu", progress=False, seed=0)
    try:
        train(ref.TinyDiffuser(model_config), exploding, trainset[:640], log=RunLog())
    except FloatingPointError:
        pass
    else:
        fail("train kept going although the loss became NaN or inf (run with lr = 1e30).", "a FloatingPointError",
             "no error", "check math.isfinite(loss.item()) each step and raise FloatingPointError with the step number")


# --------------------------------------------------------------------------------------------------------------------


class LinearNoisePredictor(DiffusionModel):
    """A known model for grading `sample`: eps_theta(x, t) = a_t x + b_t, with no parameters.

    Sampling with it is a linear Gaussian recursion, so the mean and the variance of every x_t are known exactly.
    It also records the t it is called with and whether gradients were on.
    """

    def __init__(self, schedule: nn.Module, image_shape=(1, 4, 4)):
        super().__init__()
        self.image_shape = image_shape
        self.noise_schedule = schedule
        T = len(schedule)
        self.a = torch.linspace(1.0, 1.4, T)  # a[t - 1] is a_t; these keep x_0's variance small (0.22), so
        # that the beta_1 of a wrongly noised last step shows up clearly
        self.b = torch.linspace(0.5, -0.5, T)
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
            beta, alpha, alpha_bar = (float(s.betas[t - 1]), float(s.alphas[t - 1]), float(s.alpha_bars[t - 1]))
            a, b = float(self.a[t - 1]), float(self.b[t - 1])
            k = beta / math.sqrt(1 - alpha_bar)
            scale = 1 / math.sqrt(alpha)
            if variant == "no division by sqrt(alpha_t)":
                scale = 1.0
            c, d = scale * (1 - k * a), -scale * k * b
            noise_var = beta if t > 1 else 0.0
            if variant == "noise at t = 1":
                noise_var = beta
            if variant == "sigma = beta":
                noise_var = beta**2 if t > 1 else 0.0
            mean, var = c * mean + d, c * c * var + noise_var
            moments_.append((mean, var))
        return moments_


@grader("sample", time_limit=120)  # runs a whole reverse process
def check_sample(sample) -> None:
    torch.manual_seed(0)
    schedule = schedule_with(BIG_BETAS)
    T = len(schedule)
    model = LinearNoisePredictor(schedule)
    n = 4000
    final = sample(model, n)
    expect_tensor(final, f"sample(model, {n})", shape=(n, 1, 4, 4), floating=True)
    calls = model.calls
    expect(all(c.shape == (n,) for c in calls), "the model should get one t per sample, shape (n_samples,).",
           f"t of shape ({n},)", f"shapes {sorted({tuple(c.shape) for c in calls})}",
           "torch.full((n_samples,), t) makes the batch of time steps")
    expect(all(c.dtype in (torch.int64, torch.int32) for c in calls), "t passed to the model should be integers.",
           "a long tensor", str(calls[0].dtype))
    order = [int(c[0]) for c in calls]
    expect(order == list(range(T, 0, -1)), "sample should call the model once per step, t = T down to 1.",
           str(list(range(T, 0, -1))), str(order),
           "range(T, 0, -1) runs T, ..., 1; range(T - 1, -1, -1) is off by one"
           if order == list(range(T - 1, -1, -1)) else "loop t from T down to 1, both included")
    expect(not any(model.grad_enabled), "sample should run without gradients.", "torch.is_grad_enabled() == False",
           "gradients were on", "decorate sample with @torch.no_grad(): with T model calls the graph would fill memory")

    exact = model.exact_moments()
    mean, var, _ = moments(final)
    count = final.numel()
    names = {
        "noise is added at t = 1 too: the last step returns the mean, without noise": "noise at t = 1",
        "the noise scale sigma_t is beta_t; it should be sqrt(beta_t) (sigma_t^2 = beta_t)": "sigma = beta",
        "the division by sqrt(alpha_t) is missing": "no division by sqrt(alpha_t)",
    }
    wrong_means = {desc: model.exact_moments(v)[-1][0] for desc, v in names.items()}
    wrong_vars = {desc: model.exact_moments(v)[-1][1] for desc, v in names.items()}
    default = LinearNoisePredictor(ref.NoiseSchedule(T))
    wrong_means["a new NoiseSchedule was built: use the model's own, model.noise_schedule"] = default.exact_moments()[-1][0]
    expect_statistic(mean, exact[-1][0], 6 * math.sqrt(exact[-1][1] / count),
                     "the mean of the samples x_0 differs from what Algorithm 2 gives for the grader's model.",
                     "x_{t-1} = (x_t - beta_t / sqrt(1 - alpha_bar_t) eps_theta(x_t, t)) / sqrt(alpha_t) + sigma_t z",
                     mistakes=wrong_means)
    expect_statistic(var, exact[-1][1], var_tolerance(exact[-1][1], count),
                     "the variance of the samples x_0 differs from what Algorithm 2 gives for the grader's model.",
                     "x_T ~ N(0, I) (torch.randn); z ~ N(0, I) for t > 1 and z = 0 at t = 1; sigma_t = sqrt(beta_t)",
                     mistakes=wrong_vars)

    model.calls.clear()
    steps = sample(model, n, return_all_steps=True)
    expected_shape = (T + 1, n, 1, 4, 4)
    if isinstance(steps, (list, tuple)):
        fail("sample(..., return_all_steps=True) should return one tensor.", f"shape {expected_shape}",
             f"a {type(steps).__name__} of {len(steps)}", "torch.stack the list of x_t")
    expect_tensor(steps, "sample(model, n, return_all_steps=True)", shape=expected_shape, floating=True)
    first_mean, first_var, _ = moments(steps[0])
    if abs(first_var - 1) > var_tolerance(1.0, count) and abs(moments(steps[-1])[1] - 1) <= var_tolerance(1.0, count):
        fail("the sequence runs backwards.", "steps[0] = x_T (pure noise), steps[-1] = x_0", "steps[0] looks like x_0",
             "append each new x_{t-1} to the end, starting from x_T")
    expect_statistic(first_var, 1.0, var_tolerance(1.0, count), "x_T, where sampling starts, should be standard Gaussian noise.",
                     "x_T ~ N(0, I): torch.randn(n_samples, *model.image_shape)",
                     mistakes={"x_T drawn from a uniform distribution: use torch.randn, not torch.rand": 1 / 3})
    for i, (m, v) in enumerate(exact):
        t = T - i
        emp_mean, emp_var, _ = moments(steps[i])
        expect_statistic(emp_mean, m, 6 * math.sqrt(v / count), f"the mean of steps[{i}] (x_{t}) is off.",
                         "steps[i] is x_{T - i}: x_T first, then one entry per denoising step")
        expect_statistic(emp_var, v, var_tolerance(v, count), f"the variance of steps[{i}] (x_{t}) is off.",
                         "steps[i] is x_{T - i}: x_T first, then one entry per denoising step")
