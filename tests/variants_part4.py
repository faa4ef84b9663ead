"""Other ways to write each Part 4 step: correct ones the graders must accept, and common mistakes they must catch.

Each mistake is the reference with one thing changed, named after what a student would get wrong.
Each is registered once, beside its code: `@correct(step)` or `@mistake(step, says=REGEX)` (tests/proofs.py), from
which tests/test_graders_part4.py makes its proofs.
"""

import math

import numpy as np
import torch
import torch.nn.functional as F
from einops import repeat
from torch import nn

from solutions import part1
from solutions import part4 as ref
from tests import variants_part1 as v1
from tests.proofs import Catalogue, with_own
from utils.engine.model import per_image
from utils.engine.sampling import spaced_steps

catalogue = Catalogue()
correct, mistake = catalogue.correct, catalogue.mistake

# ----------------------------------------------------------------------------------------------------- cosine_schedule


@correct("cosine_schedule")
def cosine_schedule_loop(max_steps, s=0.008):
    """Correct: Python floats, one step at a time."""

    def f(t):
        return math.cos((t / max_steps + s) / (1 + s) * math.pi / 2) ** 2

    return torch.tensor([min(1 - f(t) / f(t - 1), 0.999) for t in range(1, max_steps + 1)], dtype=torch.float32)


@correct("cosine_schedule")
def cosine_schedule_numpy(max_steps, s=0.008):
    """Correct: numpy, alpha_bar normalized first, np.clip."""
    t = np.linspace(0, max_steps, max_steps + 1)
    alpha_bar = np.cos((t / max_steps + s) / (1 + s) * np.pi / 2) ** 2
    alpha_bar = alpha_bar / alpha_bar[0]
    return torch.from_numpy(np.clip(1 - alpha_bar[1:] / alpha_bar[:-1], 0, 0.999)).float()


@correct("cosine_schedule")
def cosine_schedule_float32(max_steps, s=0.008):
    """Correct: the reference's arithmetic in float32, which the docstring allows (beta_1 comes out 0.1% low)."""
    t = torch.arange(max_steps + 1, dtype=torch.float32)
    f = torch.cos((t / max_steps + s) / (1 + s) * math.pi / 2) ** 2
    return (1 - (f / f[0])[1:] / (f / f[0])[:-1]).clamp(max=0.999)


@mistake("cosine_schedule", says="rounding: computed in float16")
def cosine_schedule_float16(max_steps, s=0.008):
    """float16 arithmetic: 1 - alpha_bar_1 / alpha_bar_0 rounds to a beta_1 several percent off."""
    t = torch.arange(max_steps + 1, dtype=torch.float16)
    f = torch.cos((t / max_steps + s) / (1 + s) * math.pi / 2) ** 2
    return (1 - f[1:] / f[:-1]).clamp(max=0.999).float()


@mistake("cosine_schedule", says="not clipped at 0.999")
def cosine_schedule_no_clip(max_steps, s=0.008):
    t = torch.arange(max_steps + 1, dtype=torch.float64)
    f = torch.cos((t / max_steps + s) / (1 + s) * math.pi / 2) ** 2
    return (1 - f[1:] / f[:-1]).float()


@mistake("cosine_schedule", says="offset s is missing")
def cosine_schedule_no_offset(max_steps, s=0.008):
    return ref.cosine_schedule(max_steps, s=0.0)


@mistake("cosine_schedule", says="not normalized by f\\(0\\)")
def cosine_schedule_unnormalized(max_steps, s=0.008):
    t = torch.arange(1, max_steps + 1, dtype=torch.float64)
    alpha_bar = torch.cos((t / max_steps + s) / (1 + s) * math.pi / 2) ** 2
    previous = torch.cat([torch.ones(1, dtype=torch.float64), alpha_bar[:-1]])
    return (1 - alpha_bar / previous).clamp(max=0.999).float()


@mistake("cosine_schedule", says="ratio is shifted by one step")
def cosine_schedule_shifted_ratio(max_steps, s=0.008):
    t = torch.arange(max_steps + 2, dtype=torch.float64)
    f = torch.cos((t / max_steps + s) / (1 + s) * math.pi / 2) ** 2
    return (1 - f[2:] / f[1:-1]).clamp(0, 0.999).float()


# ---------------------------------------------------------------------------------------------------------- predict_x0


@correct("predict_x0")
def predict_x0_via_reconstruct(x_t, eps, t, schedule):
    """Correct: Part 1's reconstruct, with t made one per image."""
    t = torch.as_tensor(t, device=x_t.device).expand(len(x_t))
    return part1.reconstruct(x_t, eps, t, schedule)


@correct("predict_x0")
def predict_x0_indexing(x_t, eps, t, schedule):
    """Correct: index the table directly and reshape by hand."""
    alpha_bar = schedule.alpha_bars[torch.as_tensor(t) - 1]
    if alpha_bar.ndim:
        alpha_bar = alpha_bar.view(-1, 1, 1, 1)
    return x_t / alpha_bar.sqrt() - eps * torch.sqrt(1 / alpha_bar - 1)


@mistake("predict_x0", says="added, not subtracted")
def predict_x0_sign(x_t, eps, t, schedule):
    alpha_bar = per_image(schedule.alpha_bar(torch.as_tensor(t).expand(len(x_t))), x_t)
    return (x_t + (1 - alpha_bar).sqrt() * eps) / alpha_bar.sqrt()


@mistake("predict_x0", says="square root is missing")
def predict_x0_no_sqrt(x_t, eps, t, schedule):
    alpha_bar = per_image(schedule.alpha_bar(torch.as_tensor(t).expand(len(x_t))), x_t)
    return (x_t - (1 - alpha_bar).sqrt() * eps) / alpha_bar


@mistake("predict_x0", says="alpha_t where alpha_bar_t belongs")
def predict_x0_alpha(x_t, eps, t, schedule):
    alpha = per_image(schedule.alpha(torch.as_tensor(t).expand(len(x_t))), x_t)
    return (x_t - (1 - alpha).sqrt() * eps) / alpha.sqrt()


# ----------------------------------------------------------------------------------------------------------- ddim_step


@correct("ddim_step", unchecked_on_meta=True)  # float() reads the schedule's values on the host
def ddim_step_coefficients(x_t, eps, t, t_prev, schedule, eta):
    """Correct: x_prev as one coefficient on x_t and one on eps, noise always drawn and scaled by sigma."""
    ab = float(schedule.alpha_bar(t))
    ab_prev = float(schedule.alpha_bar(t_prev)) if t_prev else 1.0
    sigma = eta * math.sqrt((1 - ab_prev) / (1 - ab)) * math.sqrt(1 - ab / ab_prev)
    c_x = math.sqrt(ab_prev / ab)
    c_eps = math.sqrt(max(1 - ab_prev - sigma**2, 0.0)) - math.sqrt(ab_prev * (1 - ab) / ab)
    return c_x * x_t + c_eps * eps + sigma * torch.randn(x_t.shape, dtype=x_t.dtype, device=x_t.device)


@correct("ddim_step")
def ddim_step_via_predict(x_t, eps, t, t_prev, schedule, eta):
    """Correct: alpha_bar_0 = 1 by a padded table, and the noise drawn with torch.normal."""
    table = torch.cat([schedule.alpha_bars.new_ones(1), schedule.alpha_bars])
    ab, ab_prev = table[t], table[t_prev]
    x0 = ref.predict_x0(x_t, eps, t, schedule)
    var = eta**2 * (1 - ab_prev) / (1 - ab) * (1 - ab / ab_prev)
    mean = ab_prev.sqrt() * x0 + (1 - ab_prev - var).clamp(min=0).sqrt() * eps
    return torch.normal(mean, var.sqrt().expand_as(mean)) if eta else mean


@mistake("ddim_step", says="made on the CPU: pass device=")
def ddim_step_via_predict_table_on_cpu(x_t, eps, t, t_prev, schedule, eta):
    table = torch.cat([torch.ones(1), schedule.alpha_bars])
    ab, ab_prev = table[t], table[t_prev]
    x0 = ref.predict_x0(x_t, eps, t, schedule)
    var = eta**2 * (1 - ab_prev) / (1 - ab) * (1 - ab / ab_prev)
    mean = ab_prev.sqrt() * x0 + (1 - ab_prev - var).clamp(min=0).sqrt() * eps
    return torch.normal(mean, var.sqrt().expand_as(mean)) if eta else mean


def _sigma(ab, ab_prev, eta):
    return eta * torch.sqrt((1 - ab_prev) / (1 - ab) * (1 - ab / ab_prev))


def _ddim_with(x_t, eps, t, t_prev, schedule, sigma_of, direction_sigma=True, noise_always=False, prev_shift=0):
    ab = schedule.alpha_bar(t)
    shifted = t_prev + prev_shift
    ab_prev = schedule.alpha_bar(shifted) if shifted > 0 else torch.ones_like(ab)
    x0 = ref.predict_x0(x_t, eps, t, schedule)
    sigma = sigma_of(ab, ab_prev)
    direction = torch.sqrt((1 - ab_prev - (sigma**2 if direction_sigma else 0)).clamp(min=0)) * eps
    return ab_prev.sqrt() * x0 + direction + sigma * torch.randn_like(x_t)


@mistake("ddim_step", says="eta is misplaced")
def ddim_step_eta_misplaced(x_t, eps, t, t_prev, schedule, eta):
    return _ddim_with(x_t, eps, t, t_prev, schedule, lambda ab, abp: math.sqrt(eta) * _sigma(ab, abp, 1.0))


@mistake("ddim_step", says="sigma\\^2 = beta_t is DDPM's other choice")
def ddim_step_sigma_beta(x_t, eps, t, t_prev, schedule, eta):
    return _ddim_with(x_t, eps, t, t_prev, schedule, lambda ab, abp: eta * schedule.beta(t).sqrt() * (t_prev > 0))


@mistake("ddim_step", says="off by one in t_prev")
def ddim_step_t_prev_off_by_one(x_t, eps, t, t_prev, schedule, eta):
    return _ddim_with(
        x_t, eps, t, t_prev, schedule, lambda ab, abp: _sigma(ab, abp, eta), prev_shift=1 if t_prev else 0
    )


@mistake("ddim_step", says="at eta = 0 a DDIM step adds no noise")
def ddim_step_noise_at_eta_0(x_t, eps, t, t_prev, schedule, eta):
    return _ddim_with(x_t, eps, t, t_prev, schedule, lambda ab, abp: _sigma(ab, abp, max(eta, 1.0)))


@mistake("ddim_step", says="direction term ignores sigma")
def ddim_step_direction_ignores_sigma(x_t, eps, t, t_prev, schedule, eta):
    return _ddim_with(x_t, eps, t, t_prev, schedule, lambda ab, abp: _sigma(ab, abp, eta), direction_sigma=False)


@mistake("ddim_step", says="(?s)returned NaN or inf.*0 \\* NaN is NaN")
def ddim_step_alpha_bar_0_is_0(x_t, eps, t, t_prev, schedule, eta):
    """alpha_bar_0 taken as 0 ("all noise") instead of 1: sigma's 1 - alpha_bar_t / 0 is -inf, and at eta = 0 the
    step is 0 * NaN."""
    ab = schedule.alpha_bar(t)
    ab_prev = schedule.alpha_bar(t_prev) if t_prev else torch.zeros(())
    sigma = _sigma(ab, ab_prev, eta)
    x0 = ref.predict_x0(x_t, eps, t, schedule)
    return ab_prev.sqrt() * x0 + (1 - ab_prev - sigma**2).sqrt() * eps + sigma * torch.randn_like(x_t)


@mistake("ddim_step", says="alpha_bar_0 = 1")
def ddim_step_alpha_bar_0_is_alpha_bar_1(x_t, eps, t, t_prev, schedule, eta):
    return (
        ref.ddim_step(x_t, eps, t, max(t_prev, 1), schedule, eta)
        if t_prev == 0 and t > 1
        else ref.ddim_step(x_t, eps, t, t_prev, schedule, eta)
    )


# --------------------------------------------------------------------------------------------------------- ddim_sample


@correct("ddim_sample")
@torch.no_grad()
def ddim_sample_indexed(model, n_samples, steps, eta=0.0, x_T=None):
    """Correct: an index loop over the subsequence, with the device taken from the schedule."""
    schedule = model.noise_schedule
    device = schedule.betas.device
    x = x_T.clone() if x_T is not None else torch.randn((n_samples, *model.image_shape), device=device)
    taus = spaced_steps(len(schedule), steps)
    for i in range(len(taus) - 1, -1, -1):
        t = int(taus[i])
        t_prev = int(taus[i - 1]) if i > 0 else 0
        eps = model(x, torch.full((n_samples,), t, dtype=torch.long, device=device))
        x = ref.ddim_step(x, eps, t, t_prev, schedule, eta)
    return x


@correct("ddim_sample", unchecked_on_meta=True)  # its ddim_step reads the schedule's values on the host
@torch.no_grad()
def ddim_sample_with_own_step(model, n_samples, steps, eta=0.0, x_T=None):
    """Correct: a correct alternative ddim_step, called along the pairs (tau_i, tau_{i-1})."""
    schedule = model.noise_schedule
    x = torch.randn(n_samples, *model.image_shape, device=model.device) if x_T is None else x_T
    taus = [0] + spaced_steps(len(schedule), steps).tolist()
    for t, t_prev in zip(taus[:0:-1], taus[-2::-1]):
        t_batch = torch.tensor([t] * n_samples, device=x.device)
        x = ddim_step_coefficients(x, model(x, t_batch), t, t_prev, schedule, eta)
    return x


@mistake("ddim_sample", says="made on the CPU: pass device=")
@torch.no_grad()
def ddim_sample_on_cpu(model, n_samples, steps, eta=0.0, x_T=None):
    schedule = model.noise_schedule
    x = torch.randn(n_samples, *model.image_shape) if x_T is None else x_T
    taus = [0] + spaced_steps(len(schedule), steps).tolist()
    for t, t_prev in zip(taus[:0:-1], taus[-2::-1]):
        x = ref.ddim_step(x, model(x, torch.tensor([t] * n_samples)), t, t_prev, schedule, eta)
    return x


@mistake("ddim_sample", says="changed its argument `x_T`")
@torch.no_grad()
def ddim_sample_in_place(model, n_samples, steps, eta=0.0, x_T=None):
    x = torch.randn(n_samples, *model.image_shape, device=model.device) if x_T is None else x_T
    taus = [0] + spaced_steps(len(model.noise_schedule), steps).tolist()
    for t, t_prev in zip(taus[:0:-1], taus[-2::-1]):
        eps = model(x, torch.full((n_samples,), t, device=x.device))
        x.copy_(ref.ddim_step(x, eps, t, t_prev, model.noise_schedule, eta))
    return x


@mistake("ddim_sample", says="as a Python number")
@torch.no_grad()
def ddim_sample_int_t(model, n_samples, steps, eta=0.0, x_T=None):
    x = torch.randn(n_samples, *model.image_shape, device=model.device) if x_T is None else x_T
    taus = [0] + spaced_steps(len(model.noise_schedule), steps).tolist()
    for t, t_prev in zip(taus[:0:-1], taus[-2::-1]):
        x = ref.ddim_step(x, model(x, t), t, t_prev, model.noise_schedule, eta)
    return x


@torch.no_grad()
def _sample_pairs(model, n_samples, pairs, eta, x_T):
    schedule = model.noise_schedule
    x = torch.randn(n_samples, *model.image_shape) if x_T is None else x_T
    for t, t_prev in pairs:
        x = ref.ddim_step(x, model(x, torch.full((n_samples,), t)), t, t_prev, schedule, eta)
    return x


@mistake("ddim_sample", says="called at T first")
def ddim_sample_ascending(model, n_samples, steps, eta=0.0, x_T=None):
    taus = spaced_steps(len(model.noise_schedule), steps).tolist()
    return _sample_pairs(model, n_samples, list(zip(taus, [0] + taus[:-1])), eta, x_T)


@mistake("ddim_sample", says="one more step, to t_prev = 0")
def ddim_sample_stops_at_tau_1(model, n_samples, steps, eta=0.0, x_T=None):
    taus = spaced_steps(len(model.noise_schedule), steps).tolist()
    return _sample_pairs(model, n_samples, list(zip(taus[::-1], taus[-2::-1])), eta, x_T)


@mistake("ddim_sample", says="t_prev is the previous entry tau_\\{i-1\\}")
def ddim_sample_previous_step(model, n_samples, steps, eta=0.0, x_T=None):
    taus = spaced_steps(len(model.noise_schedule), steps).tolist()
    return _sample_pairs(model, n_samples, [(t, t - 1) for t in taus[::-1]], eta, x_T)


@mistake("ddim_sample", says="start from x_T when it is given")
def ddim_sample_ignores_x_T(model, n_samples, steps, eta=0.0, x_T=None):
    return ref.ddim_sample(model, n_samples, steps, eta)


# --------------------------------------------------------------------------------------------------------- drop_labels


@correct("drop_labels")
def drop_labels_bernoulli(labels, p, no_label):
    """Correct: a Bernoulli mask and masked_fill on a copy."""
    mask = torch.bernoulli(torch.full(labels.shape, float(p), device=labels.device)).bool()
    return labels.clone().masked_fill(mask, no_label)


@correct("drop_labels", unchecked_on_meta=True)  # a round trip through the CPU: right on a GPU, beyond meta
def drop_labels_numpy(labels, p, no_label):
    """Correct: numpy's generator, through the CPU and back to the labels' device."""
    keep = np.random.default_rng().random(len(labels)) >= p
    return torch.from_numpy(np.where(keep, labels.cpu().numpy(), no_label)).long().to(labels.device)


@mistake("drop_labels", says="(?s)not on the CPU.*numpy works on the CPU only")
def drop_labels_numpy_on_cpu_only(labels, p, no_label):
    # numpy straight from the labels: fine on the CPU, "can't convert cuda:0 device type tensor to numpy" on a GPU
    keep = np.random.default_rng().random(len(labels)) >= p
    return torch.from_numpy(np.where(keep, labels.numpy(), no_label)).long()


@mistake("drop_labels", says="(?s)not on the CPU.*device=labels.device")
def drop_labels_rand_on_cpu(labels, p, no_label):
    # the random numbers made on the CPU, whatever the labels' device
    return torch.where(torch.rand(labels.shape) < p, torch.full_like(labels, no_label), labels)


@mistake("drop_labels", says="probability 1 - p")
def drop_labels_one_minus_p(labels, p, no_label):
    return torch.where(torch.rand(labels.shape) < 1 - p, torch.full_like(labels, no_label), labels)


@mistake("drop_labels", says="label 0 is a real class")
def drop_labels_zero(labels, p, no_label):
    return torch.where(torch.rand(labels.shape) < p, torch.zeros_like(labels), labels)


@mistake("drop_labels", says="one random number per label")
def drop_labels_whole_batch(labels, p, no_label):
    return torch.full_like(labels, no_label) if torch.rand(()) < p else labels.clone()


@mistake("drop_labels", says="changed the labels it was given")
def drop_labels_in_place(labels, p, no_label):
    labels[torch.rand(labels.shape) < p] = no_label
    return labels


# ------------------------------------------------------------------------------------------------------ ConditionalUnet


@correct("ConditionalUnet")
class ConditionalUnetOwnForward(ref.Unet):
    """Correct: the label table registered last, and Part 2's forward written out with the label added."""

    def __init__(self, config, noise_schedule=None):
        super().__init__(config, noise_schedule)
        self.classes = nn.Embedding(config.num_classes + 1, 4 * config.channels)

    def forward(self, images, num_steps, labels=None):
        if labels is None:
            labels = torch.full_like(num_steps, self.config.num_classes)
        t_emb = self.time_mlp(num_steps) + self.classes(labels)
        x = self.init_conv(images)
        skips = []
        for down in self.downs:
            x, skip = down(x, t_emb)
            skips.append(skip)
        x = self.mid(x, t_emb)
        for up in self.ups:
            x = up(x, skips.pop(), t_emb)
        return self.final_conv(self.final_res(x, t_emb))


class _Wrapped(nn.Module):
    def __init__(self, time_mlp, table):
        super().__init__()
        self.time_mlp, self.table = time_mlp, table

    def forward(self, conditions):
        return self.time_mlp(conditions[:, 0]) + self.table(conditions[:, 1])


@correct("ConditionalUnet")
class ConditionalUnetStacked(ref.Unet):
    """Correct: its own wrapper module and torch.stack."""

    def __init__(self, config, noise_schedule=None):
        super().__init__(config, noise_schedule)
        self.time_mlp = _Wrapped(self.time_mlp, nn.Embedding(config.num_classes + 1, 4 * config.channels))

    def forward(self, images, num_steps, labels=None):
        labels = torch.full_like(num_steps, self.config.num_classes) if labels is None else labels
        return super().forward(images, torch.stack([num_steps, labels.long()], dim=1))


@mistake("ConditionalUnet", says="'no label' token")
class ConditionalUnetNoNullRow(ConditionalUnetStacked):
    def __init__(self, config, noise_schedule=None):
        ref.Unet.__init__(self, config, noise_schedule)
        self.time_mlp = _Wrapped(self.time_mlp, nn.Embedding(config.num_classes, 4 * config.channels))


@mistake("ConditionalUnet", says="labels=None was read as label 0")
class ConditionalUnetNoneIsZero(ConditionalUnetStacked):
    def forward(self, images, num_steps, labels=None):
        labels = torch.zeros_like(num_steps) if labels is None else labels
        return ref.Unet.forward(self, images, torch.stack([num_steps, labels.long()], dim=1))


@mistake("ConditionalUnet", says="the labels are ignored")
class ConditionalUnetIgnoresLabels(ConditionalUnetOwnForward):
    def forward(self, images, num_steps, labels=None):
        return ref.Unet.forward(self, images, num_steps)


# ----------------------------------------------------------------------------------------------------- conditional_loss


@correct("conditional_loss")
def conditional_loss_by_hand(model, x_0, labels, p_uncond=0.1):
    """Correct: the noise drawn by hand, the labels dropped by a correct alternative."""
    labels = drop_labels_bernoulli(labels, p_uncond, model.config.num_classes)
    t = torch.randint(1, len(model.noise_schedule) + 1, (len(x_0),), device=x_0.device)
    eps = torch.randn_like(x_0)
    alpha_bar = model.noise_schedule.alpha_bar(t).view(-1, 1, 1, 1)
    x_t = alpha_bar.sqrt() * x_0 + (1 - alpha_bar).sqrt() * eps
    return ((model(x_t, t, labels) - eps) ** 2).mean()


@mistake("conditional_loss", says="made on the CPU: pass device=")
def conditional_loss_t_on_cpu(model, x_0, labels, p_uncond=0.1):
    labels = drop_labels_bernoulli(labels, p_uncond, model.config.num_classes)
    t = torch.randint(1, len(model.noise_schedule) + 1, (len(x_0),))
    eps = torch.randn_like(x_0)
    alpha_bar = model.noise_schedule.alpha_bar(t).view(-1, 1, 1, 1)
    x_t = alpha_bar.sqrt() * x_0 + (1 - alpha_bar).sqrt() * eps
    return ((model(x_t, t, labels) - eps) ** 2).mean()


@mistake("conditional_loss", says="changed its argument `labels`")
def conditional_loss_drops_in_place(model, x_0, labels, p_uncond=0.1):
    labels[torch.rand(labels.shape, device=labels.device) < p_uncond] = model.config.num_classes
    num_steps, noise, x_t = part1.noise_img(x_0, model.noise_schedule)
    return F.mse_loss(model(x_t, num_steps, labels), noise)


@mistake("conditional_loss", says="(?s)same t.*one t drawn for the whole batch")
def conditional_loss_one_t(model, x_0, labels, p_uncond=0.1):
    """One t drawn for the whole batch."""
    labels = ref.drop_labels(labels, p_uncond, model.config.num_classes)
    t = torch.randint(1, len(model.noise_schedule) + 1, (1,)).expand(len(x_0))
    eps = torch.randn_like(x_0)
    alpha_bar = model.noise_schedule.alpha_bar(t).view(-1, 1, 1, 1)
    x_t = alpha_bar.sqrt() * x_0 + (1 - alpha_bar).sqrt() * eps
    return F.mse_loss(model(x_t, t, labels), eps)


@mistake("conditional_loss", says="no label was dropped")
def conditional_loss_no_drop(model, x_0, labels, p_uncond=0.1):
    num_steps, noise, x_t = ref.noise_img(x_0, model.noise_schedule)
    return F.mse_loss(model(x_t, num_steps, labels), noise)


@mistake("conditional_loss", says="probability 1 - p_uncond")
def conditional_loss_one_minus_p(model, x_0, labels, p_uncond=0.1):
    return ref.conditional_loss(model, x_0, labels, 1 - p_uncond)


@mistake("conditional_loss", says="compared with x_0")
def conditional_loss_against_x0(model, x_0, labels, p_uncond=0.1):
    labels = ref.drop_labels(labels, p_uncond, model.config.num_classes)
    num_steps, _, x_t = ref.noise_img(x_0, model.noise_schedule)
    return F.mse_loss(model(x_t, num_steps, labels), x_0)


# ---------------------------------------------------------------------------------------------------------- guided_eps


@correct("guided_eps")
def guided_eps_einops(model, x_t, num_steps, labels, w):
    """Correct: einops repeat for the doubled batch, and eps_u + (1 + w)(eps_c - eps_u)."""
    both_labels = torch.stack([labels, torch.full_like(labels, model.config.num_classes)])  # (2, B)
    out = model(
        repeat(x_t, "b c h w -> (two b) c h w", two=2), repeat(num_steps, "b -> (two b)", two=2), both_labels.flatten()
    )
    eps_c, eps_u = out[: len(x_t)], out[len(x_t) :]
    return eps_u + (1 + w) * (eps_c - eps_u)


@correct("guided_eps")
def guided_eps_unconditional_first(model, x_t, num_steps, labels, w):
    """Correct: the "no label" half first."""
    no_label = torch.full_like(labels, model.config.num_classes)
    eps_u, eps_c = model(torch.cat([x_t, x_t]), num_steps.repeat(2), torch.cat([no_label, labels])).split(len(x_t))
    return (1 + w) * eps_c - w * eps_u


@mistake("guided_eps", says="signs are swapped")
def guided_eps_signs_swapped(model, x_t, num_steps, labels, w):
    return ref.guided_eps(model, x_t, num_steps, labels, -1 - w)


@mistake("guided_eps", says="guidance-scale convention")
def guided_eps_scale_convention(model, x_t, num_steps, labels, w):
    return ref.guided_eps(model, x_t, num_steps, labels, w - 1)


@mistake("guided_eps", says="call the model once, on a batch of 2B")
def guided_eps_two_calls(model, x_t, num_steps, labels, w):
    eps_c = model(x_t, num_steps, labels)
    eps_u = model(x_t, num_steps, torch.full_like(labels, model.config.num_classes))
    return (1 + w) * eps_c - w * eps_u


@mistake("guided_eps", says="used label 0")
def guided_eps_label_zero(model, x_t, num_steps, labels, w):
    both = model(torch.cat([x_t, x_t]), torch.cat([num_steps, num_steps]), torch.cat([labels, 0 * labels]))
    eps_c, eps_u = both.chunk(2)
    return (1 + w) * eps_c - w * eps_u


# ------------------------------------------------------------------------- a later step after a wrong earlier one


def _drop_labels_never(labels, p, no_label):
    return labels.clone()


# The reference conditional_loss in a notebook whose drop_labels never drops, or whose Part 1 noise_img is wrong.
conditional_loss_after_wrong_drop_labels = mistake(
    "conditional_loss",
    "(?s)no label was dropped.*first: your `drop_labels`, which this step calls, fails its own check",
    with_own(ref.conditional_loss, drop_labels=_drop_labels_never),
)
conditional_loss_after_wrong_noise_img = mistake(
    "conditional_loss",
    "(?s)first: your `noise_img`, which this step calls, fails its own check",
    with_own(ref.conditional_loss, noise_img=v1.noise_img_scaled_noise),
)
# The reference ddim_step in a notebook whose predict_x0 adds the noise term instead of subtracting it.
ddim_step_after_wrong_predict_x0 = mistake(
    "ddim_step",
    "(?s)first: your `predict_x0`, which this step calls, fails its own check \\(.*added, not subtracted",
    with_own(ref.ddim_step, predict_x0=predict_x0_sign),
)


@mistake("ddim_step", says="made on the CPU: pass device=")
def ddim_step_noise_on_cpu(x_t, eps, t, t_prev, schedule, eta):
    ab = schedule.alpha_bar(t)
    ab_prev = schedule.alpha_bar(t_prev) if t_prev else torch.ones_like(ab)
    sigma = _sigma(ab, ab_prev, eta)
    x0 = ref.predict_x0(x_t, eps, t, schedule)
    mean = ab_prev.sqrt() * x0 + (1 - ab_prev - sigma**2).clamp(min=0).sqrt() * eps
    return mean + sigma * torch.randn(x_t.shape)


@mistake("ddim_step", says="changed its argument `x_t`")
def ddim_step_in_place(x_t, eps, t, t_prev, schedule, eta):
    return x_t.copy_(ref.ddim_step(x_t, eps, t, t_prev, schedule, eta))


@mistake("predict_x0", says="changed its argument `x_t`")
def predict_x0_in_place(x_t, eps, t, schedule):
    ab = per_image(schedule.alpha_bar(torch.as_tensor(t).reshape(-1).expand(len(x_t))), x_t)
    return x_t.sub_((1 - ab).sqrt() * eps).div_(ab.sqrt())


@mistake("guided_eps", says="made on the CPU: pass device=")
def guided_eps_no_label_on_cpu(model, x_t, num_steps, labels, w):
    no_label = torch.full((len(labels),), model.config.num_classes)
    both = model(torch.cat([x_t, x_t]), torch.cat([num_steps, num_steps]), torch.cat([labels, no_label]))
    eps_c, eps_u = both.chunk(2)
    return (1 + w) * eps_c - w * eps_u


@mistake("ConditionalUnet", says="made on the CPU: pass device=")
class ConditionalUnetNoLabelOnCpu(ConditionalUnetStacked):
    def forward(self, images, num_steps, labels=None):
        if labels is None:
            labels = torch.full((len(images),), self.config.num_classes)
        return super().forward(images, num_steps, labels)


# ------------------------------------------------------------------------------------------------------------ v_target


def _alpha_bar_of(t, schedule, like):
    """alpha_bar_t as (B, 1, 1, 1), from the raw table, for an int t or a (B,) tensor."""
    steps = torch.full((like.shape[0],), t) if isinstance(t, int) else t
    return schedule.alpha_bars[steps - 1].view(-1, 1, 1, 1)


@correct("v_target")
def v_target_angle(x_0, eps, t, schedule):
    """Correct: the angle phi of Salimans and Ho's appendix D, v = cos(phi) eps - sin(phi) x_0."""
    phi = torch.atan2((1 - _alpha_bar_of(t, schedule, x_0)).sqrt(), _alpha_bar_of(t, schedule, x_0).sqrt())
    return torch.cos(phi) * eps - torch.sin(phi) * x_0


@correct("v_target")
def v_target_einsum(x_0, eps, t, schedule):
    """Correct: the schedule's method, and einsum over the batch."""
    steps = torch.as_tensor(t).expand(x_0.shape[0])
    alpha_bar = schedule.alpha_bar(steps)
    return torch.einsum("b,bchw->bchw", alpha_bar.sqrt(), eps) - torch.einsum(
        "b,bchw->bchw", (1 - alpha_bar).sqrt(), x_0
    )


@mistake("v_target", says="the sign is flipped")
def v_target_sign(x_0, eps, t, schedule):
    alpha_bar = _alpha_bar_of(t, schedule, x_0)
    return (1 - alpha_bar).sqrt() * x_0 - alpha_bar.sqrt() * eps


@mistake("v_target", says="square-root factors are swapped")
def v_target_swapped(x_0, eps, t, schedule):
    alpha_bar = _alpha_bar_of(t, schedule, x_0)
    return (1 - alpha_bar).sqrt() * eps - alpha_bar.sqrt() * x_0


@mistake("v_target", says="alpha_t where alpha_bar_t belongs")
def v_target_alpha(x_0, eps, t, schedule):
    steps = torch.as_tensor(t).expand(x_0.shape[0])
    alpha = per_image(schedule.alpha(steps), x_0)
    return alpha.sqrt() * eps - (1 - alpha).sqrt() * x_0


@mistake("v_target", says="flow matching's target")
def v_target_flow(x_0, eps, t, schedule):
    return eps - x_0


# -------------------------------------------------------------------------------------------------- predictions_from_v


@correct("predictions_from_v")
def predictions_from_v_rotation(x_t, v, t, schedule):
    """Correct: a 2x2 rotation applied with einsum to the stacked (x_t, v)."""
    alpha_bar = schedule.alpha_bar(torch.as_tensor(t).expand(x_t.shape[0]))
    c, s = alpha_bar.sqrt(), (1 - alpha_bar).sqrt()
    rotation = torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)  # (B, 2, 2)
    x0_hat, eps_hat = torch.einsum("bij,bjchw->bichw", rotation, torch.stack([x_t, v], 1)).unbind(1)
    return x0_hat, eps_hat


@correct("predictions_from_v")
def predictions_from_v_through_eps(x_t, v, t, schedule):
    """Correct: x0_hat from v, then eps_hat from Part 1's eq. 4 solved for the noise (fine away from t = 0)."""
    alpha_bar = _alpha_bar_of(t, schedule, x_t)
    x0_hat = alpha_bar.sqrt() * x_t - (1 - alpha_bar).sqrt() * v
    return x0_hat, (x_t - alpha_bar.sqrt() * x0_hat) / (1 - alpha_bar).sqrt()


@mistake("predictions_from_v", says="wrong order")
def predictions_from_v_swapped_pair(x_t, v, t, schedule):
    x0_hat, eps_hat = ref.predictions_from_v(x_t, v, t, schedule)
    return eps_hat, x0_hat


@mistake("predictions_from_v", says="v's sign")
def predictions_from_v_sign(x_t, v, t, schedule):
    return ref.predictions_from_v(x_t, -v, t, schedule)


@mistake("predictions_from_v", says="square-root factors are swapped")
def predictions_from_v_swapped_factors(x_t, v, t, schedule):
    alpha_bar = _alpha_bar_of(t, schedule, x_t)
    c, s = alpha_bar.sqrt(), (1 - alpha_bar).sqrt()
    return s * x_t - c * v, c * x_t + s * v


@mistake("predictions_from_v", says="alpha_t where alpha_bar_t belongs")
def predictions_from_v_alpha(x_t, v, t, schedule):
    alpha = per_image(schedule.alpha(torch.as_tensor(t).expand(x_t.shape[0])), x_t)
    return alpha.sqrt() * x_t - (1 - alpha).sqrt() * v, (1 - alpha).sqrt() * x_t + alpha.sqrt() * v


@mistake("predictions_from_v", says="(?s)eps_hat.*v's sign")
def predictions_from_v_eps_sign(x_t, v, t, schedule):
    x0_hat, _ = ref.predictions_from_v(x_t, v, t, schedule)
    alpha_bar = _alpha_bar_of(t, schedule, x_t)
    return x0_hat, (1 - alpha_bar).sqrt() * x_t - alpha_bar.sqrt() * v
