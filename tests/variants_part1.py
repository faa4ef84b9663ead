"""Other ways to write each Part 1 step: correct ones the graders must accept, and common mistakes they must catch.

Each mistake is the reference with one thing changed, named after what a student would get wrong.
Each is registered once, beside its code: `@correct(step)` or `@mistake(step, says=REGEX)` (tests/proofs.py), from
which tests/test_graders_part1.py makes its proofs.
"""

import dataclasses
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from solutions import part1 as ref
from tests.proofs import Catalogue, with_own
from utils.engine.model import per_image

catalogue = Catalogue()
correct, mistake = catalogue.correct, catalogue.mistake

# ----------------------------------------------------------------------------------------------------- linear_schedule


@correct("linear_schedule")
def linear_schedule_arange(max_steps, min_noise=1e-4, max_noise=0.02):
    """Correct: an arange instead of linspace."""
    return min_noise + (max_noise - min_noise) * torch.arange(max_steps, dtype=torch.float32) / (max_steps - 1)


@mistake("linear_schedule", says="reversed")
def linear_schedule_reversed(max_steps, min_noise=1e-4, max_noise=0.02):
    return torch.linspace(max_noise, min_noise, max_steps)


@mistake("linear_schedule", says="T \\+ 1 points")
def linear_schedule_extra_point(max_steps, min_noise=1e-4, max_noise=0.02):
    return torch.linspace(min_noise, max_noise, max_steps + 1)[1:]


@mistake("linear_schedule", says="float32")
def linear_schedule_float64(max_steps, min_noise=1e-4, max_noise=0.02):
    return torch.from_numpy(np.linspace(min_noise, max_noise, max_steps))


@mistake("linear_schedule", says="min_noise and max_noise are ignored")
def linear_schedule_fixed_ends(max_steps, min_noise=1e-4, max_noise=0.02):
    return torch.linspace(1e-4, 0.02, max_steps)


# --------------------------------------------------------------------------------------------------------- q_eq2/q_eq4


@correct("q_eq2")
def q_eq2_normal(x, num_steps, betas):
    """Correct: torch.normal with explicit mean and std per step."""
    for beta in betas[:num_steps]:
        x = torch.normal(mean=torch.sqrt(1 - beta) * x, std=torch.sqrt(beta).expand_as(x))
    return x


_NUMPY_RNG = np.random.default_rng()


@correct("q_eq2")
def q_eq2_numpy_rng(x, num_steps, betas):
    """Correct: noise from numpy's generator, not torch's."""
    for t in range(num_steps):
        noise = torch.from_numpy(_NUMPY_RNG.standard_normal(x.shape)).to(x.dtype)
        x = (1 - betas[t]).sqrt() * x + betas[t].sqrt() * noise
    return x


@mistake("q_eq2", says="beta used as a standard deviation")
def q_eq2_beta_as_std(x, num_steps, betas):
    for t in range(num_steps):
        x = torch.sqrt(1 - betas[t]) * x + betas[t] * torch.randn_like(x)
    return x


@mistake("q_eq2", says="off by one")
def q_eq2_off_by_one(x, num_steps, betas):
    for t in range(num_steps + 1):
        x = torch.sqrt(1 - betas[t]) * x + torch.sqrt(betas[t]) * torch.randn_like(x)
    return x


@mistake("q_eq2", says="torch.rand")
def q_eq2_uniform(x, num_steps, betas):
    for t in range(num_steps):
        x = torch.sqrt(1 - betas[t]) * x + torch.sqrt(betas[t]) * torch.rand_like(x)
    return x


@mistake("q_eq2", says="one noise tensor reused")
def q_eq2_same_noise(x, num_steps, betas):
    noise = torch.randn_like(x)
    for t in range(num_steps):
        x = torch.sqrt(1 - betas[t]) * x + torch.sqrt(betas[t]) * noise
    return x


@mistake("q_eq2", says="changed its argument `x` in place")
def q_eq2_in_place(x, num_steps, betas):
    for t in range(num_steps):
        x.mul_(torch.sqrt(1 - betas[t])).add_(torch.sqrt(betas[t]) * torch.randn_like(x))
    return x


@correct("q_eq4")
def q_eq4_cumprod_index(x, num_steps, betas):
    """Correct: the cumprod table, with num_steps = 0 handled."""
    if num_steps == 0:
        return x.clone()
    alpha_bar = torch.cumprod(1 - betas, dim=0)[num_steps - 1]
    return alpha_bar.sqrt() * x + (1 - alpha_bar).sqrt() * torch.empty_like(x).normal_()


@correct("q_eq4")
def q_eq4_log_space(x, num_steps, betas):
    """Correct: alpha_bar as exp of a sum of logs, and noise from torch.normal."""
    alpha_bar = torch.exp(torch.log1p(-betas[:num_steps]).sum())
    return torch.normal(alpha_bar.sqrt() * x, (1 - alpha_bar).sqrt().item())


correct("q_eq4", ref.q_eq2)  # eq. 2 in a loop has exactly eq. 4's distribution


@mistake("q_eq4", says="off by one")
def q_eq4_off_by_one(x, num_steps, betas):
    alpha_bar = torch.cumprod(1 - betas, dim=0)[num_steps]
    return alpha_bar.sqrt() * x + (1 - alpha_bar).sqrt() * torch.randn_like(x)


@mistake("q_eq4", says="wraps around")
def q_eq4_wraps_at_zero(x, num_steps, betas):
    alpha_bar = torch.cumprod(1 - betas, dim=0)[num_steps - 1]
    return alpha_bar.sqrt() * x + (1 - alpha_bar).sqrt() * torch.randn_like(x)


@mistake("q_eq4", says="variance and standard deviation mixed up")
def q_eq4_no_sqrt(x, num_steps, betas):
    alpha_bar = torch.prod(1 - betas[:num_steps])
    return torch.sqrt(alpha_bar) * x + (1 - alpha_bar) * torch.randn_like(x)


@mistake("q_eq4", says="sqrt\\(alpha_t\\) of the last step")
def q_eq4_last_alpha_only(x, num_steps, betas):
    alpha = 1 - betas[num_steps - 1]
    alpha_bar = torch.prod(1 - betas[:num_steps])
    return alpha.sqrt() * x + (1 - alpha_bar).sqrt() * torch.randn_like(x)


@mistake("q_eq4", says="uniform|torch.rand")
def q_eq4_uniform(x, num_steps, betas):
    alpha_bar = torch.prod(1 - betas[:num_steps])
    return alpha_bar.sqrt() * x + (1 - alpha_bar).sqrt() * torch.rand_like(x)


@mistake("q_eq4", says="same output twice")
def q_eq4_seeded(x, num_steps, betas):
    torch.manual_seed(0)
    return ref.q_eq4(x, num_steps, betas)


# ------------------------------------------------------------------------------------------------------- NoiseSchedule


@correct("NoiseSchedule")
class NoiseScheduleLoops(nn.Module):
    """Correct: tables filled by a Python loop, lookups through a helper."""

    def __init__(self, betas):
        super().__init__()
        alpha_bars, running = [], 1.0
        for beta in betas.tolist():
            running *= 1 - beta
            alpha_bars.append(running)
        self.register_buffer("betas", betas.clone())
        self.register_buffer("alphas", 1 - betas)
        self.register_buffer("alpha_bars", torch.tensor(alpha_bars, dtype=betas.dtype, device=betas.device))

    def _lookup(self, table, t):
        return table[torch.as_tensor(t, device=table.device) - 1]

    def beta(self, t):
        return self._lookup(self.betas, t)

    def alpha(self, t):
        return self._lookup(self.alphas, t)

    def alpha_bar(self, t):
        return self._lookup(self.alpha_bars, t)

    def __len__(self):
        return len(self.betas)


@correct("NoiseSchedule")
class NoiseScheduleLogSpace(ref.NoiseSchedule):
    """Correct: alpha_bar through a sum of logs, with setattr on registered buffers."""

    def __init__(self, betas):
        nn.Module.__init__(self)
        self.register_buffer("betas", betas)
        self.register_buffer("alphas", 1.0 - betas)
        self.register_buffer("alpha_bars", torch.exp(torch.cumsum(torch.log1p(-betas), 0)))


@mistake("NoiseSchedule", says="plain attribute")
class NoiseSchedulePlainAttributes(ref.NoiseSchedule):
    def __init__(self, betas):
        nn.Module.__init__(self)
        self.betas = betas
        self.alphas = 1 - self.betas
        self.alpha_bars = torch.cumprod(self.alphas, 0)


@mistake("NoiseSchedule", says="off by one: alpha_bars starts at 1")
class NoiseScheduleShifted(ref.NoiseSchedule):
    """alpha_bars[0] = 1, i.e. alpha_bar_0 where alpha_bar_1 belongs."""

    def __init__(self, betas):
        super().__init__(betas)
        self.alpha_bars = torch.cat([torch.ones(1, device=self.alphas.device), torch.cumprod(self.alphas, 0)[:-1]])


@mistake("NoiseSchedule", says="index t - 1")
class NoiseScheduleIndexT(ref.NoiseSchedule):
    """Tables right, lookups at index t instead of t - 1."""

    def beta(self, t):
        return self.betas[torch.as_tensor(t)]

    def alpha(self, t):
        return self.alphas[torch.as_tensor(t)]

    def alpha_bar(self, t):
        return self.alpha_bars[torch.as_tensor(t)]


@mistake("NoiseSchedule", says="cumulative sum")
class NoiseScheduleCumsum(ref.NoiseSchedule):
    def __init__(self, betas):
        super().__init__(betas)
        self.alpha_bars = torch.cumsum(self.alphas, 0)


@mistake("NoiseSchedule", says="tables are made on the CPU")
class NoiseScheduleOnCpu(ref.NoiseSchedule):
    """Tables rebuilt on the CPU whatever the betas' device."""

    def __init__(self, betas):
        super().__init__(
            betas.new_empty(betas.shape, device="cpu").copy_(betas)
            if betas.device.type != "meta"
            else torch.linspace(1e-4, 0.02, len(betas))
        )


@correct("NoiseSchedule")
class NoiseScheduleNumpy(ref.NoiseSchedule):
    """Correct: alpha_bar by numpy's cumprod, brought back to the betas' device."""

    def __init__(self, betas):
        nn.Module.__init__(self)
        alpha_bars = np.cumprod(1 - betas.cpu().numpy())
        self.register_buffer("betas", betas.clone())
        self.register_buffer("alphas", 1 - betas)
        self.register_buffer("alpha_bars", torch.tensor(alpha_bars, dtype=betas.dtype).to(betas.device))


@mistake("NoiseSchedule", says="(?s)alpha_bars on cpu.*tables are made on the CPU")
class NoiseScheduleNumpyOnCpu(ref.NoiseSchedule):
    """alpha_bar by numpy's cumprod, left on the CPU: a real meta tensor cannot even build it."""

    def __init__(self, betas):
        nn.Module.__init__(self)
        alpha_bars = np.cumprod(1 - betas.cpu().numpy())
        self.register_buffer("betas", betas.clone())
        self.register_buffer("alphas", 1 - betas)
        self.register_buffer("alpha_bars", torch.tensor(alpha_bars, dtype=betas.dtype))


@mistake("NoiseSchedule", says="(?s)alphas on cpu.*\\.cpu\\(\\) moved the betas there")
class NoiseScheduleThroughCpu(ref.NoiseSchedule):
    """Tables computed from betas.cpu() and left there: a real meta tensor cannot even be copied to the CPU."""

    def __init__(self, betas):
        nn.Module.__init__(self)
        on_cpu = betas.cpu()
        self.register_buffer("betas", betas.clone())
        self.register_buffer("alphas", 1 - on_cpu)
        self.register_buffer("alpha_bars", torch.cumprod(1 - on_cpu, 0))


@mistake("NoiseSchedule", says="changed its argument `t` in place")
class NoiseScheduleShiftsTInPlace(ref.NoiseSchedule):
    """Turns t into an index with t -= 1: the caller's tensor of time steps is shifted too."""

    def _lookup(self, table, t):
        if isinstance(t, torch.Tensor):
            t -= 1
            return table[t]
        return table[t - 1]

    def beta(self, t):
        return self._lookup(self.betas, t)

    def alpha(self, t):
        return self._lookup(self.alphas, t)

    def alpha_bar(self, t):
        return self._lookup(self.alpha_bars, t)


@mistake("NoiseSchedule", says="changed its argument `betas` in place")
class NoiseScheduleBetasInPlace(ref.NoiseSchedule):
    """alphas = 1 - betas computed in place, in the caller's betas."""

    def __init__(self, betas):
        nn.Module.__init__(self)
        self.register_buffer("betas", betas.clone())
        self.register_buffer("alphas", betas.neg_().add_(1))
        self.register_buffer("alpha_bars", torch.cumprod(self.alphas, 0))


@mistake("NoiseSchedule", says="betas passed in are ignored")
class NoiseScheduleIgnoresBetas(ref.NoiseSchedule):
    """Builds the linear schedule of len(betas) steps whatever the betas."""

    def __init__(self, betas):
        super().__init__(ref.linear_schedule(len(betas)).to(betas.device))


@mistake("NoiseSchedule", says="float64 tables")
class NoiseScheduleFloat32Always(ref.NoiseSchedule):
    """Tables always float32, whatever the betas' dtype."""

    def __init__(self, betas):
        super().__init__(betas.float())


@mistake("NoiseSchedule", says="reversed")
class NoiseScheduleReversed(ref.NoiseSchedule):
    def __init__(self, betas):
        super().__init__(betas)
        self.betas = self.betas.flip(0)
        self.alphas = 1 - self.betas
        self.alpha_bars = torch.cumprod(self.alphas, 0)


# ----------------------------------------------------------------------------------------------------------- noise_img


@correct("noise_img")
def noise_img_normal(img, noise_schedule, max_steps=None):
    """Correct: t from a multinomial over 1..T, noise from torch.normal, lookups into the raw table."""
    max_steps = max_steps or len(noise_schedule)
    t = torch.multinomial(torch.ones(max_steps, device=img.device), img.shape[0], replacement=True) + 1
    noise = torch.normal(0.0, 1.0, size=img.shape, device=img.device)
    alpha_bar = noise_schedule.alpha_bars[t - 1].view(-1, 1, 1, 1)
    return t, noise, alpha_bar.sqrt() * img + (1 - alpha_bar).sqrt() * noise


@correct("noise_img")
def noise_img_ceil(img, noise_schedule, max_steps=None):
    """Correct: t as the ceiling of uniform floats, the noise by normal_ on an empty tensor, eq. 4 built up in place
    on a new tensor (never on img)."""
    max_steps = max_steps or len(noise_schedule)
    t = (torch.rand(img.shape[0], device=img.device) * max_steps).ceil().long().clamp(min=1)
    noise = torch.empty_like(img).normal_()
    alpha_bar = per_image(noise_schedule.alpha_bar(t), img)
    noised = img * alpha_bar.sqrt()
    noised += (1 - alpha_bar).sqrt() * noise
    return t, noise, noised


def _noise_img_with(change: str):
    """The reference noise_img with one thing changed, named noise_img_<change>."""

    def noise_img(img, noise_schedule, max_steps=None):
        max_steps = max_steps or len(noise_schedule)
        first, last = {"from_zero": (0, max_steps - 1), "excludes_T": (1, max_steps - 1)}.get(change, (1, max_steps))
        t = torch.randint(first, last + 1, (img.shape[0],))
        if change == "uniform":
            noise = torch.rand_like(img)
        elif change == "float64_noise":  # drawn by numpy, which makes x_t float64 too
            noise = torch.from_numpy(np.random.default_rng().standard_normal(img.shape))
        else:
            noise = torch.randn_like(img)
        if change == "from_zero":  # t from {0, ..., T - 1}, looked up at index t
            alpha_bar = noise_schedule.alpha_bars[t]
        elif change == "index_t":  # t right, looked up at index t instead of t - 1
            alpha_bar = noise_schedule.alpha_bars[t.clamp(max=max_steps - 1)]
        elif change == "alpha_not_alpha_bar":
            alpha_bar = noise_schedule.alpha(t)
        else:
            alpha_bar = noise_schedule.alpha_bar(t)
        alpha_bar = alpha_bar.view(-1, 1, 1, 1)
        if change == "scaled_noise":  # the noise returned is the scaled one
            noise = (1 - alpha_bar).sqrt() * noise
            return t, noise, alpha_bar.sqrt() * img + noise
        return t, noise, alpha_bar.sqrt() * img + (1 - alpha_bar).sqrt() * noise

    noise_img.__name__ = f"noise_img_{change}"
    return noise_img


noise_img_excludes_T = mistake("noise_img", "never reached T", _noise_img_with("excludes_T"))
noise_img_from_zero = mistake("noise_img", "never be 0", _noise_img_with("from_zero"))
noise_img_index_t = mistake("noise_img", "off by one", _noise_img_with("index_t"))
noise_img_uniform = mistake("noise_img", "uniform noise", _noise_img_with("uniform"))
noise_img_scaled_noise = mistake("noise_img", "unscaled noise", _noise_img_with("scaled_noise"))
noise_img_alpha_not_alpha_bar = mistake(
    "noise_img", "alpha_t used where eq. 4 needs alpha_bar_t", _noise_img_with("alpha_not_alpha_bar")
)
noise_img_float64_noise = mistake(
    "noise_img", "noise, for float32 images should be torch.float32", _noise_img_with("float64_noise")
)


@mistake(
    "noise_img",
    says="(?s)variants_part1.py:\\d+, in noise_img_from_zero_lookup.*raised inside given code: solutions/part1.py"
    ".*t runs from 1 to T",
)
def noise_img_from_zero_lookup(img, noise_schedule, max_steps=None):
    """t from {0, ..., T - 1}, looked up through the schedule, whose own check stops t = 0 inside given code."""
    max_steps = max_steps or len(noise_schedule)
    t = torch.randint(0, max_steps, (img.shape[0],))
    noise = torch.randn_like(img)
    alpha_bar = per_image(noise_schedule.alpha_bar(t), img)
    return t, noise, alpha_bar.sqrt() * img + (1 - alpha_bar).sqrt() * noise


@mistake("noise_img", says="num_steps is made on the CPU: pass device=img.device to torch.randint")
def noise_img_t_on_cpu(img, noise_schedule, max_steps=None):
    """t drawn on the CPU: the schedule's lookup moves it along, but the t returned stays behind, and the model on a
    GPU gets t there and the images here."""
    t = torch.randint(1, (max_steps or len(noise_schedule)) + 1, (img.shape[0],))
    noise = torch.randn_like(img)
    alpha_bar = per_image(noise_schedule.alpha_bar(t), img)
    return t, noise, alpha_bar.sqrt() * img + (1 - alpha_bar).sqrt() * noise


@mistake("noise_img", says="made on the CPU: pass device=")
def noise_img_noise_on_cpu(img, noise_schedule, max_steps=None):
    """The noise drawn with torch.randn(img.shape): on the CPU, whatever the images' device."""
    t = torch.randint(1, (max_steps or len(noise_schedule)) + 1, (img.shape[0],), device=img.device)
    noise = torch.randn(img.shape)
    alpha_bar = per_image(noise_schedule.alpha_bar(t), img)
    return t, noise, alpha_bar.sqrt() * img + (1 - alpha_bar).sqrt() * noise


@mistake("noise_img", says="changed its argument `img` in place")
def noise_img_in_place(img, noise_schedule, max_steps=None):
    """Eq. 4 written into the images themselves: the caller's clean batch is now noised."""
    t = torch.randint(1, (max_steps or len(noise_schedule)) + 1, (img.shape[0],), device=img.device)
    noise = torch.randn_like(img)
    alpha_bar = per_image(noise_schedule.alpha_bar(t), img)
    img *= alpha_bar.sqrt()
    img += (1 - alpha_bar).sqrt() * noise
    return t, noise, img


@mistake("noise_img", says="integers")
def noise_img_float_t(img, noise_schedule, max_steps=None):
    t, noise, noised = ref.noise_img(img, noise_schedule, max_steps)
    return t.float(), noise, noised


@mistake("noise_img", says="max_steps=3")
def noise_img_ignores_max_steps(img, noise_schedule, max_steps=None):
    return ref.noise_img(img, noise_schedule)


# --------------------------------------------------------------------------------------------------------- reconstruct


@correct("reconstruct")
def reconstruct_rsqrt(noisy_img, noise, num_steps, noise_schedule):
    """Correct: multiply by rsqrt, look up the raw table."""
    alpha_bar = noise_schedule.alpha_bars[num_steps - 1][:, None, None, None]
    return torch.rsqrt(alpha_bar) * noisy_img - torch.sqrt((1 - alpha_bar) / alpha_bar) * noise


@mistake("reconstruct", says="changed its argument `noisy_img` in place")
def reconstruct_in_place(noisy_img, noise, num_steps, noise_schedule):
    """Right values, written into x_t: the caller's noised images are gone."""
    alpha_bar = per_image(noise_schedule.alpha_bar(num_steps), noisy_img)
    noisy_img -= (1 - alpha_bar).sqrt() * noise
    return noisy_img.div_(alpha_bar.sqrt())


@mistake("reconstruct", says="division by sqrt\\(alpha_bar_t\\) is missing")
def reconstruct_no_division(noisy_img, noise, num_steps, noise_schedule):
    alpha_bar = noise_schedule.alpha_bar(num_steps).view(-1, 1, 1, 1)
    return noisy_img - (1 - alpha_bar).sqrt() * noise


@mistake("reconstruct", says="added instead of subtracted")
def reconstruct_plus(noisy_img, noise, num_steps, noise_schedule):
    alpha_bar = noise_schedule.alpha_bar(num_steps).view(-1, 1, 1, 1)
    return (noisy_img + (1 - alpha_bar).sqrt() * noise) / alpha_bar.sqrt()


# --------------------------------------------------------------------------------------------------------- q_posterior


def _alpha_bars_with_zero(noise_schedule):
    """alpha_bar_0 = 1, then the schedule's alpha_bar_1, ..., alpha_bar_T: entry n is alpha_bar_n."""
    return torch.cat([noise_schedule.alpha_bars.new_ones(1), noise_schedule.alpha_bars])


@mistake("q_posterior", says="made on the CPU: pass device=")
def q_posterior_padded_on_cpu(x_t, x_0, num_steps, noise_schedule):
    """The padded table with its alpha_bar_0 = 1 made by torch.ones(1): on the CPU, whatever the schedule's device."""
    table = torch.cat([torch.ones(1), noise_schedule.alpha_bars])
    alpha_bar, alpha_bar_prev = table[num_steps], table[num_steps - 1]
    beta = noise_schedule.betas[num_steps - 1]
    mean = (
        per_image(alpha_bar_prev.sqrt() * beta / (1 - alpha_bar), x_0) * x_0
        + per_image((1 - beta).sqrt() * (1 - alpha_bar_prev) / (1 - alpha_bar), x_t) * x_t
    )
    return mean, beta * (1 - alpha_bar_prev) / (1 - alpha_bar)


@correct("q_posterior")
def q_posterior_padded_table(x_t, x_0, num_steps, noise_schedule):
    """Correct: one table with alpha_bar_0 = 1 prepended, indexed by t and t - 1; the mean as x_0's and x_t's weights
    with einsum."""
    table = _alpha_bars_with_zero(noise_schedule)
    alpha_bar, alpha_bar_prev = table[num_steps], table[num_steps - 1]
    beta = noise_schedule.betas[num_steps - 1]
    w_0 = alpha_bar_prev.sqrt() * beta / (1 - alpha_bar)
    w_t = (1 - beta).sqrt() * (1 - alpha_bar_prev) / (1 - alpha_bar)
    mean = torch.einsum("b,bchw->bchw", w_0, x_0) + torch.einsum("b,bchw->bchw", w_t, x_t)
    return mean, beta * (1 - alpha_bar_prev) / (1 - alpha_bar)


@correct("q_posterior")
def q_posterior_loop(x_t, x_0, num_steps, noise_schedule):
    """Correct: one image at a time, each t a 0-d tensor on the inputs' device (no read on the host, so it runs on a
    GPU without waiting), t = 1 picked out with torch.where."""
    means, variances = [], []
    for x_t_i, x_0_i, t in zip(x_t, x_0, num_steps.reshape(-1, 1), strict=True):
        # t is a 1-element tensor: indexing with it reads nothing on the host; [0] keeps each table's value 0-d
        beta, alpha, alpha_bar = (
            table[t - 1][0] for table in (noise_schedule.betas, noise_schedule.alphas, noise_schedule.alpha_bars)
        )
        earlier = noise_schedule.alpha_bars[(t - 2).clamp(min=0)][0]
        alpha_bar_prev = torch.where(t[0] > 1, earlier, torch.ones_like(alpha_bar))
        means.append(
            (alpha_bar_prev.sqrt() * beta * x_0_i + alpha.sqrt() * (1 - alpha_bar_prev) * x_t_i) / (1 - alpha_bar)
        )
        variances.append((1 - alpha_bar_prev) / (1 - alpha_bar) * beta)
    return torch.stack(means), torch.stack(variances)


def _q_posterior_with(name, alpha_bar_prev_of, variance_of=None, swap=False):
    """The reference's eq. 7 with alpha_bar_{t-1} from `alpha_bar_prev_of(schedule, t)` and, if given, the variance
    from `variance_of(beta, alpha_bar, alpha_bar_prev)`; `swap` exchanges x_0's and x_t's coefficients."""

    def q_posterior(x_t, x_0, num_steps, noise_schedule):
        beta, alpha = noise_schedule.beta(num_steps), noise_schedule.alpha(num_steps)
        alpha_bar = noise_schedule.alpha_bar(num_steps)
        alpha_bar_prev = alpha_bar_prev_of(noise_schedule, num_steps)
        w_0 = alpha_bar_prev.sqrt() * beta / (1 - alpha_bar)
        w_t = alpha.sqrt() * (1 - alpha_bar_prev) / (1 - alpha_bar)
        if swap:
            w_0, w_t = w_t, w_0
        mean = per_image(w_0, x_0) * x_0 + per_image(w_t, x_t) * x_t
        variance = (1 - alpha_bar_prev) / (1 - alpha_bar) * beta
        return mean, variance if variance_of is None else variance_of(beta, alpha_bar, alpha_bar_prev)

    q_posterior.__name__ = name
    return q_posterior


def _previous(noise_schedule, num_steps):
    """alpha_bar_{t-1}, right: alpha_bar_0 = 1."""
    return _alpha_bars_with_zero(noise_schedule)[num_steps - 1]


mistake(
    "q_posterior",
    "coefficients are swapped",
    _q_posterior_with("q_posterior_swapped", _previous, swap=True),
)
mistake(
    "q_posterior",
    r"alpha_bar_t where eq. 7 has alpha_bar_\{t-1\}",
    _q_posterior_with("q_posterior_alpha_bar_t_for_previous", lambda schedule, t: schedule.alpha_bar(t)),
)
mistake(
    "q_posterior",
    "beta_t in place of beta_tilde_t",
    _q_posterior_with("q_posterior_beta_variance", _previous, variance_of=lambda beta, alpha_bar, alpha_bar_prev: beta),
)
mistake(
    "q_posterior",
    "the standard deviation, not the variance",
    _q_posterior_with("q_posterior_std", _previous, lambda beta, a, a_prev: ((1 - a_prev) / (1 - a) * beta).sqrt()),
)
mistake(
    "q_posterior",
    "(?s)raised IndexError.*alpha_bar_0 = 1",
    _q_posterior_with("q_posterior_alpha_bar_of_zero", lambda schedule, t: schedule.alpha_bar(t - 1)),
)
mistake(
    "q_posterior",
    "alpha_bar_0 taken as alpha_bar_1",
    _q_posterior_with("q_posterior_clamped_to_one", lambda schedule, t: schedule.alpha_bar((t - 1).clamp(min=1))),
)
mistake(
    "q_posterior",
    "wrapped round to alpha_bar_T",
    _q_posterior_with("q_posterior_wraps_round", lambda schedule, t: schedule.alpha_bars[t - 2]),
)


# -------------------------------------------------------------------------------------------------------- TinyDiffuser


@correct("TinyDiffuser")
class TinyDiffuserOwnNames(ref.DiffusionModel):
    """Correct: layers in a ModuleList with names of their own, view/cat instead of einops, the conversion to the
    noise written with rsqrt."""

    def __init__(self, config, noise_schedule=None):
        super().__init__(config, noise_schedule)
        n = math.prod(config.image_shape)
        sizes = [n + 1] + [config.hidden_size] * config.n_hidden_layers
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.out = nn.Linear(sizes[-1], n)

    def forward(self, images, num_steps):
        h = torch.cat([images.flatten(1), (num_steps.float() / len(self.noise_schedule)).unsqueeze(1)], dim=1)
        for layer in self.hidden:
            h = F.relu(layer(h))
        x0_hat = self.out(h).view(images.shape)
        a = self.noise_schedule.alpha_bars[num_steps - 1].view(-1, 1, 1, 1)
        return (images - a.sqrt() * x0_hat) * torch.rsqrt(1 - a)


def _x0_to_eps(model, images, num_steps, x0_hat, table=None, root=True):
    a = (model.noise_schedule.alpha_bars if table is None else table)[num_steps - 1].view(-1, 1, 1, 1)
    return (images - a.sqrt() * x0_hat) / (1 - a).sqrt() if root else (images - a * x0_hat) / (1 - a)


def _t(model, num_steps):
    return num_steps[:, None].float() / len(model.noise_schedule)


@mistake("TinyDiffuser", says="(?s)meta.*made in forward on the CPU: pass device=")
class TinyDiffuserTColumnOnCpu(ref.TinyDiffuser):
    """The t / T column made as torch.ones(B, 1) times t: on the CPU, whatever the images' device."""

    def forward(self, images, num_steps):
        column = torch.ones(len(images), 1) * (num_steps[:, None].to(images.dtype) / len(self.noise_schedule))
        x0_hat = self.model(torch.cat([images.flatten(1), column], 1)).view(images.shape)
        return _x0_to_eps(self, images, num_steps, x0_hat)


@mistake("TinyDiffuser", says="guess of x_0 is returned as it is")
class TinyDiffuserReturnsX0(ref.TinyDiffuser):
    """Returns the network's guess of x_0, not the noise."""

    def forward(self, images, num_steps):
        return self.model(torch.cat([images.flatten(1), _t(self, num_steps)], 1)).view(images.shape)


@mistake("TinyDiffuser", says="alpha_t where eq. 4 needs alpha_bar_t")
class TinyDiffuserAlphaNotAlphaBar(ref.TinyDiffuser):
    def forward(self, images, num_steps):
        x0_hat = TinyDiffuserReturnsX0.forward(self, images, num_steps)
        return _x0_to_eps(self, images, num_steps, x0_hat, table=self.noise_schedule.alphas)


@mistake("TinyDiffuser", says="square roots are missing")
class TinyDiffuserNoSqrt(ref.TinyDiffuser):
    def forward(self, images, num_steps):
        return _x0_to_eps(self, images, num_steps, TinyDiffuserReturnsX0.forward(self, images, num_steps), root=False)


@mistake("TinyDiffuser", says="appended unscaled")
class TinyDiffuserRawT(ref.TinyDiffuser):
    def forward(self, images, num_steps):
        x0_hat = self.model(torch.cat([images.flatten(1), num_steps[:, None].float()], 1)).view(images.shape)
        return _x0_to_eps(self, images, num_steps, x0_hat)


@mistake("TinyDiffuser", says="fixed number, not by this schedule's T")
class TinyDiffuserFixedT(ref.TinyDiffuser):
    """Scales t by the default T = 100 of an earlier version, not by its schedule's length."""

    def forward(self, images, num_steps):
        x0_hat = self.model(torch.cat([images.flatten(1), num_steps[:, None].float() / 100], 1)).view(images.shape)
        return _x0_to_eps(self, images, num_steps, x0_hat)


@mistake("TinyDiffuser", says="float32 images should be torch.float32")
class TinyDiffuserFloat64(ref.TinyDiffuser):
    """Returns float64: t built as a float64 tensor and the network run in float64."""

    def forward(self, images, num_steps):
        x = torch.cat([images.flatten(1).double(), num_steps[:, None].double() / len(self.noise_schedule)], 1)
        x0_hat = self.model.double()(x).view(images.shape)
        return _x0_to_eps(self, images.double(), num_steps, x0_hat)


@mistake("TinyDiffuser", says="n_hidden_layers, config.hidden_size or config.image_shape is ignored")
class TinyDiffuserDefaultSizes(ref.TinyDiffuser):
    """Ignores config.n_hidden_layers: always one hidden layer."""

    def __init__(self, config, noise_schedule=None):
        super().__init__(dataclasses.replace(config, n_hidden_layers=1), noise_schedule)


@mistake("TinyDiffuser", says="forgot to append t")
class TinyDiffuserNoT(ref.TinyDiffuser):
    def __init__(self, config, noise_schedule=None):
        super().__init__(config, noise_schedule)
        n = math.prod(config.image_shape)
        sizes = [n] + [config.hidden_size] * config.n_hidden_layers
        layers = [m for a, b in zip(sizes[:-1], sizes[1:]) for m in (nn.Linear(a, b), nn.ReLU())]
        self.model = nn.Sequential(*layers, nn.Linear(sizes[-1], n))

    def forward(self, images, num_steps):
        return _x0_to_eps(self, images, num_steps, self.model(images.flatten(1)).view(images.shape))


@mistake("TinyDiffuser", says="subclass DiffusionModel")
class TinyDiffuserNotADiffusionModel(nn.Module):
    def __init__(self, config, noise_schedule=None):
        super().__init__()
        self.inner = ref.TinyDiffuser(config, noise_schedule)

    def forward(self, images, num_steps):
        return self.inner(images, num_steps)


# ------------------------------------------------------------------------------------------------------ diffusion_loss


@correct("diffusion_loss")
def diffusion_loss_by_hand(model, x_0):
    """Correct: t, eps and x_t written out with torch.normal, the squared error averaged by hand."""
    schedule = model.noise_schedule
    t = torch.multinomial(torch.ones(len(schedule), device=x_0.device), len(x_0), replacement=True) + 1
    eps = torch.normal(0.0, 1.0, size=x_0.shape, device=x_0.device)
    alpha_bar = schedule.alpha_bars[t - 1].view(-1, 1, 1, 1)
    x_t = alpha_bar.sqrt() * x_0 + (1 - alpha_bar).sqrt() * eps
    return ((model(x_t, t) - eps) ** 2).sum() / eps.numel()


@correct("diffusion_loss")
def diffusion_loss_einsum(model, x_0):
    """Correct: the reference's noise_img, the mean through einsum."""
    t, eps, x_t = ref.noise_img(x_0, model.noise_schedule)
    diff = model(x_t, t) - eps
    return torch.einsum("bchw,bchw->", diff, diff) / diff.numel()


def _loss_with(change: str):
    def diffusion_loss(model, x_0):
        schedule = (
            ref.NoiseSchedule(ref.linear_schedule(len(model.noise_schedule)))
            if change == "new schedule"
            else model.noise_schedule
        )
        t, eps, x_t = ref.noise_img(x_0, schedule)
        if change == "one t":  # one draw for the whole batch, noised by hand
            t = torch.randint(1, len(schedule) + 1, (1,)).expand(len(x_0))
            alpha_bar = per_image(schedule.alpha_bar(t), x_0)
            x_t = alpha_bar.sqrt() * x_0 + (1 - alpha_bar).sqrt() * eps
        prediction = model(x_0 if change == "clean input" else x_t, t)
        target = {"image": x_0, "noised": x_t}.get(change, eps)
        if change == "sum":
            return ((prediction - target) ** 2).sum()
        if change == "item":
            return F.mse_loss(prediction, target).item()
        if change == "detached":
            return F.mse_loss(prediction.detach(), target)
        if change == "abs":
            return (prediction - target).abs().mean()
        return F.mse_loss(prediction, target)

    diffusion_loss.__name__ = f"diffusion_loss_{change.replace(' ', '_')}"
    return diffusion_loss


diffusion_loss_against_image = mistake("diffusion_loss", "compared with the image x_0", _loss_with("image"))
diffusion_loss_against_noised = mistake("diffusion_loss", "compared with x_t", _loss_with("noised"))
diffusion_loss_sum = mistake("diffusion_loss", "a sum, not a mean", _loss_with("sum"))
diffusion_loss_item = mistake("diffusion_loss", "not loss.item\\(\\)", _loss_with("item"))
diffusion_loss_detached = mistake("diffusion_loss", "carries no gradient", _loss_with("detached"))
diffusion_loss_abs = mistake("diffusion_loss", "squares are missing", _loss_with("abs"))
diffusion_loss_new_schedule = mistake(
    "diffusion_loss", "not N\\(0, I\\) under the model's schedule", _loss_with("new schedule")
)
diffusion_loss_clean_input = mistake("diffusion_loss", "given the clean images", _loss_with("clean input"))
diffusion_loss_one_t = mistake("diffusion_loss", "(?s)same t.*one t drawn for the whole batch", _loss_with("one t"))


def _loss_by_hand_with(change: str):
    """Algorithm 1's lines 2-5 written out, with one thing done as it works on a CPU only."""

    def diffusion_loss(model, x_0):
        schedule = model.noise_schedule
        T = len(schedule)
        if change == "t on cpu":
            t = torch.randint(1, T + 1, (len(x_0),))
        elif change == "float t":  # the ceiling of uniform floats, left as floats
            t = (torch.rand(len(x_0), device=x_0.device) * T).ceil().clamp(min=1)
        else:
            t = torch.randint(1, T + 1, (len(x_0),), device=x_0.device)
        if change == "float64 noise":  # drawn by numpy: x_t becomes float64 too
            eps = torch.from_numpy(np.random.default_rng(0).standard_normal(tuple(x_0.shape))).to(x_0.device)
        else:
            eps = torch.randn_like(x_0)
        alpha_bar = schedule.alpha_bars[t.long().to(schedule.betas.device) - 1].view(-1, 1, 1, 1)
        x_t = alpha_bar.sqrt() * x_0 + (1 - alpha_bar).sqrt() * eps
        return F.mse_loss(model(x_t, t), eps.to(x_t.dtype))

    diffusion_loss.__name__ = f"diffusion_loss_{change.replace(' ', '_')}"
    return diffusion_loss


diffusion_loss_t_on_cpu = mistake("diffusion_loss", "made on the CPU: pass device=", _loss_by_hand_with("t on cpu"))
diffusion_loss_float_t = mistake("diffusion_loss", "t passed to the model as floats", _loss_by_hand_with("float t"))
diffusion_loss_float64_noise = mistake(
    "diffusion_loss", "images of another dtype than the model's weights", _loss_by_hand_with("float64 noise")
)


@mistake("diffusion_loss", says="changed its argument `x_0` in place")
def diffusion_loss_noises_x_0_in_place(model, x_0):
    """x_t written into the minibatch itself: the next epoch trains on noised images."""
    t, eps, _ = ref.noise_img(x_0, model.noise_schedule)
    alpha_bar = per_image(model.noise_schedule.alpha_bar(t), x_0)
    x_t = x_0.mul_(alpha_bar.sqrt()).add_((1 - alpha_bar).sqrt() * eps)
    return F.mse_loss(model(x_t, t), eps)


# --------------------------------------------------------------------------------------------------------------- train


@correct("train")
def train_plain(model, config, trainset, testset=None, log=None):
    """Correct: a DataLoader over a TensorDataset, the loss inline, the log made by hand; no device handling."""
    from torch.utils.data import DataLoader, TensorDataset

    from utils.engine.training import RunLog

    log = log if log is not None else RunLog()
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    step = 0
    for _ in range(config.epochs):
        for (x_0,) in DataLoader(TensorDataset(trainset), batch_size=config.batch_size, shuffle=True):
            t, eps, x_t = ref.noise_img(x_0, model.noise_schedule)
            loss = ((model(x_t, t) - eps) ** 2).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            step += 1
            log.log(step, loss=loss.item())
        if testset is not None:
            ref.log_eval(model, testset, log, step, config)
    return model


def _train_with(change: str = ""):
    """The reference loop with one thing changed."""

    def train(model, config, trainset, testset=None, log=None):
        from utils.engine.training import RunLog

        log = log if log is not None else RunLog()
        torch.manual_seed(config.seed or 0)
        if change == "new schedule":  # T = 1000, the paper's, instead of the model's own
            model.noise_schedule = ref.NoiseSchedule(ref.linear_schedule(1000))
        lr = 1e-3 if change == "default lr" else config.lr
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        batch_size = 128 if change == "default batch size" else config.batch_size
        epochs = 10 if change == "default epochs" else config.epochs
        n = 0
        for _ in range(epochs):
            for x_0 in trainset[torch.randperm(len(trainset))].split(batch_size):
                loss = ref.diffusion_loss(model, x_0)
                if change != "no zero_grad":
                    optimizer.zero_grad()
                loss.backward()
                if change != "no step":
                    optimizer.step()
                n += 1
                if change != "no loss log":
                    log.log(n, loss=loss.item())
            if testset is not None and change != "no eval log":
                ref.log_eval(model, testset, log, n, config)
        return model

    train.__name__ = f"train_{change.replace(' ', '_')}"
    return train


train_no_step = mistake("train", "did not change the model's weights", _train_with("no step"))
train_no_eval_log = mistake("train", "eval_loss", _train_with("no eval log"))
train_no_loss_log = mistake("train", "logged no loss", _train_with("no loss log"))
train_default_lr = mistake("train", "ignores config.lr", _train_with("default lr"))
train_default_batch_size = mistake("train", "config.batch_size = 64", _train_with("default batch size"))
train_default_epochs = mistake("train", "config.epochs = 30", _train_with("default epochs"))
train_new_schedule = mistake("train", "replaced the model's noise schedule", _train_with("new schedule"))
train_no_zero_grad = mistake("train", r"optimizer.zero_grad\(\) runs every step", _train_with("no zero_grad"))


# -------------------------------------------------------------------------------------------------------------- sample


@correct("sample")
@torch.inference_mode()
def sample_loop_list(model, n_samples, return_all_steps=False):
    """Correct: inference_mode, a reversed() range, the posterior written with alpha_bar ratios."""
    s = model.noise_schedule
    x = torch.randn((n_samples,) + tuple(model.image_shape), device=s.betas.device)
    out = [x]
    for t in reversed(range(1, len(s) + 1)):
        tt = torch.full((n_samples,), t, dtype=torch.long, device=x.device)
        coef = (1 - s.alphas[t - 1]) / torch.sqrt(1 - s.alpha_bars[t - 1])
        x = (x - coef * model(x, tt)) * torch.rsqrt(s.alphas[t - 1])
        if t > 1:
            x = x + s.betas[t - 1].sqrt() * torch.normal(0.0, 1.0, size=x.shape, device=x.device)
        out.append(x)
    return torch.stack(out) if return_all_steps else x


def _sample_with(change: str):
    @torch.no_grad()
    def sample(model, n_samples, return_all_steps=False):
        s = model.noise_schedule
        if change == "new schedule":
            s = ref.NoiseSchedule(ref.linear_schedule(len(s)))
        T = len(s)
        x = torch.randn(n_samples, *model.image_shape)
        steps = [x]
        ts = range(T - 1, -1, -1) if change == "t off by one" else range(T, 0, -1)
        for t in ts:
            index = min(max(t, 1), T)
            eps = model(x, torch.full((n_samples,), t, dtype=torch.long))
            beta, alpha, alpha_bar = s.beta(index), s.alpha(index), s.alpha_bar(index)
            if change == "alpha_bar(t - 1)":  # a table index one too low: at t = 1 it wraps to alpha_bar_T
                alpha_bar = s.alpha_bars[index - 2]
            x = x - beta / torch.sqrt(1 - alpha_bar) * eps
            if change != "no division":
                x = x / torch.sqrt(alpha)
            sigma = beta if change == "sigma = beta" else beta.sqrt()
            if (t > 1 or change == "noise at t = 1") and change != "no noise":
                x = x + sigma * torch.randn_like(x)
            steps.append(x)
        if change == "reversed sequence":
            steps = steps[::-1]
        if change == "list":
            return steps if return_all_steps else x
        return torch.stack(steps) if return_all_steps else x

    sample.__name__ = f"sample_{change.replace(' ', '_')}"
    return sample


sample_noise_at_t1 = mistake("sample", "noise is added at t = 1", _sample_with("noise at t = 1"))
sample_sigma_beta = mistake("sample", ("sqrt\\(beta_t\\)", "sigma_t is beta_t"), _sample_with("sigma = beta"))
sample_no_division = mistake("sample", "division by sqrt\\(alpha_t\\) is missing", _sample_with("no division"))
sample_t_off_by_one = mistake("sample", "off by one", _sample_with("t off by one"))
sample_new_schedule = mistake("sample", "model.noise_schedule", _sample_with("new schedule"))
sample_reversed_sequence = mistake("sample", "backwards", _sample_with("reversed sequence"))
sample_returns_list = mistake("sample", "one tensor", _sample_with("list"))
sample_no_noise = mistake("sample", "no noise is added", _sample_with("no noise"))
sample_alpha_bar_previous = mistake("sample", "alpha_bar is looked up one step early", _sample_with("alpha_bar(t - 1)"))


@correct("sample", unchecked_on_meta=True)
@torch.no_grad()
def sample_python_floats(model, n_samples, return_all_steps=False):
    """Correct: the coefficients as Python floats (float(tensor) reads a value on the host, so the meta device cannot
    run it: the grader's device check cannot judge this one)."""
    s = model.noise_schedule
    device = s.betas.device
    x = torch.randn(n_samples, *model.image_shape, device=device)
    steps = [x]
    for t in range(len(s), 0, -1):
        beta, alpha, alpha_bar = float(s.beta(t)), float(s.alpha(t)), float(s.alpha_bar(t))
        eps = model(x, torch.full((n_samples,), t, device=device))
        x = (x - beta / math.sqrt(1 - alpha_bar) * eps) / math.sqrt(alpha)
        if t > 1:
            x = x + math.sqrt(beta) * torch.randn_like(x)
        steps.append(x)
    return torch.stack(steps) if return_all_steps else x


def _sample_on_cpu_with(change: str):
    """The reference sampler with one tensor made as it works on a CPU only."""

    @torch.no_grad()
    def sample(model, n_samples, return_all_steps=False):
        s = model.noise_schedule
        device = s.betas.device
        x = torch.randn(n_samples, *model.image_shape, device=None if change == "x_T on cpu" else device)
        if change == "float64 x_T":
            x = x.double()
        steps = [x]
        for t in range(len(s), 0, -1):
            if change == "python t":
                num_steps = t
            elif change == "one t":
                num_steps = torch.tensor(t, device=device)
            else:
                num_steps = torch.full((n_samples,), t, device=device)
            eps = model(x, num_steps)
            if change == "alpha_bar_0 = 1":  # the previous step's alpha_bar, with alpha_bar_0 = 1 at t = 1
                alpha_bar = s.alpha_bar(t - 1) if t > 1 else torch.ones((), device=device)
            elif change == "alpha_bar(t - 1), clamped":
                alpha_bar = s.alpha_bar(max(t - 1, 1))
            else:
                alpha_bar = s.alpha_bar(t)
            x = (x - s.beta(t) / torch.sqrt(1 - alpha_bar) * eps) / torch.sqrt(s.alpha(t))
            if t > 1:
                x = x + torch.sqrt(s.beta(t)) * torch.randn_like(x)
            steps.append(x)
        return torch.stack(steps) if return_all_steps else x

    sample.__name__ = f"sample_{change.replace(' ', '_').replace('(', '').replace(')', '').replace(',', '')}"
    return sample


sample_x_T_on_cpu = mistake("sample", "made on the CPU: pass device=", _sample_on_cpu_with("x_T on cpu"))
sample_python_t = mistake("sample", "t passed to the model as a Python number", _sample_on_cpu_with("python t"))
sample_0d_t = mistake("sample", "t is not one value per image", _sample_on_cpu_with("one t"))
sample_float64 = mistake(
    "sample", "images of another dtype than the model's weights", _sample_on_cpu_with("float64 x_T")
)
sample_alpha_bar_0 = mistake(
    "sample", "(?s)NaN or inf.*alpha_bar is looked up one step early", _sample_on_cpu_with("alpha_bar_0 = 1")
)
sample_alpha_bar_clamped = mistake(
    "sample",
    "alpha_bar is looked up one step early, alpha_bar_\\{t-1\\} \\(alpha_bar_1 at t = 1\\)",
    _sample_on_cpu_with("alpha_bar(t - 1), clamped"),
)


@mistake("sample", says="without gradients")
def sample_with_grad(model, n_samples, return_all_steps=False):
    return ref.sample.__wrapped__(model, n_samples, return_all_steps)


@mistake("sample", says="uniform distribution")
def sample_uniform_start(model, n_samples, return_all_steps=False):
    original = torch.randn
    try:
        torch.randn = lambda *shape, **kw: torch.rand(*shape, **kw) * 2 - 1
        return ref.sample(model, n_samples, return_all_steps)
    finally:
        torch.randn = original


@mistake("sample", says="one t per sample")
def sample_one_t(model, n_samples, return_all_steps=False):
    """Passes t as a 0-d tensor instead of one t per sample."""
    hook = model.register_forward_pre_hook(lambda _, args: (args[0], args[1][0]))
    try:
        return ref.sample(model, n_samples, return_all_steps)
    finally:
        hook.remove()


# ---------------------------------------------------------------------------------------- dtypes the docstrings promise


@mistake("q_eq4", says="should be torch.float32, as the docstring says")
def q_eq4_float64(x, num_steps, betas):
    """Right values, wrong dtype: alpha_bar taken in float64 "for accuracy", and the result left that way."""
    alpha_bar = torch.prod(1 - betas[:num_steps].double())
    return alpha_bar.sqrt() * x.double() + (1 - alpha_bar).sqrt() * torch.randn(x.shape, dtype=torch.float64)


# ------------------------------------------------------------------------- a later step after a wrong earlier one

# The reference diffusion_loss in a file whose noise_img draws t from {0, ..., T - 1}: it fails, and names noise_img.
diffusion_loss_after_wrong_noise_img = mistake(
    "diffusion_loss",
    "(?s)t runs from 1 to T.*first: your `noise_img`, which this step calls, fails its own check",
    with_own(ref.diffusion_loss, noise_img=noise_img_from_zero_lookup),
)
# The reference diffusion_loss in a file whose noise_img scales the noise wrongly: t is right, x_t is not.
diffusion_loss_after_unscaled_noise_img = mistake(
    "diffusion_loss",
    "(?s)does not match.*first: your `noise_img`, which this step calls, fails its own check",
    with_own(ref.diffusion_loss, noise_img=noise_img_scaled_noise),
)
