"""Part 4: faster sampling and guidance: the cosine schedule, DDIM, class conditioning and classifier-free guidance.

Follows three papers after DDPM:

    Nichol and Dhariwal, "Improved Denoising Diffusion Probabilistic Models" (ICML 2021), eq. 17: the cosine schedule.
    Song, Meng and Ermon, "Denoising Diffusion Implicit Models" (ICLR 2021), eq. 12 and 16: DDIM sampling.
    Ho and Salimans, "Classifier-Free Diffusion Guidance" (2022), Algorithms 1 and 2 and eq. 6: guidance.

Symbols and their names here (DDIM writes alpha_t for what DDPM and this course call alpha_bar_t):

    alpha_bar_t     schedule.alpha_bar(t), with alpha_bar_0 = 1 (no noise at all)
    x0_hat          predict_x0: the clean image that x_t and the predicted noise eps point to
    eta             how much fresh noise each DDIM step adds: 0 deterministic, 1 DDPM's posterior variance
    sigma_t         the standard deviation of that fresh noise
    y, no label     a class in {0, ..., K - 1}, and the extra index K that stands for "no label"
    w               the guidance weight: eps = (1 + w) eps(x_t, t, y) - w eps(x_t, t, no label)

Time-step convention, as in Parts 1-3: t in {1, ..., T}, step t at index t - 1 of every table. A fast sampler visits
S of those steps, tau_1 = 1 < ... < tau_S = T (`utils.engine.sampling.spaced_steps`), and then goes to x_0, the
clean image, as its last step: "t_prev = 0" below means that step, with alpha_bar_0 = 1.
"""

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

# Part 4 builds on Parts 1 and 2; it copies nothing. The reference by default; to use yours, import from exercises.
from solutions.part1 import NoiseSchedule, noise_img, reconstruct
from solutions.part2 import Unet, UnetConfig
from utils.engine.model import DiffusionModel, per_image
from utils.engine.sampling import spaced_steps

# betas larger than this make sampling divide by sqrt(1 - beta_t) ~ 0 near t = T (Nichol and Dhariwal, section 3.2).
MAX_BETA = 0.999


def cosine_schedule(max_steps: int, s: float = 0.008) -> Tensor:
    """The cosine variance schedule of improved DDPM (Nichol and Dhariwal 2021, eq. 17).

        f(t) = cos^2( (t / T + s) / (1 + s) * pi / 2 ),    alpha_bar_t = f(t) / f(0),    t = 0, ..., T
        beta_t = 1 - alpha_bar_t / alpha_bar_{t-1},        clipped at 0.999

    The small offset s keeps beta_1 from being vanishingly small; dividing by f(0) makes alpha_bar_0 = 1 exactly.
    f(T) = 0, so the last beta would be 1 (and sampling would divide by zero) without the clip.

    Args:
        max_steps: T, the number of noise steps.
        s: the offset.
    Returns:
        float32 tensor of shape (T,); entry t - 1 is beta_t. `NoiseSchedule(cosine_schedule(T))` is the schedule.
    """
    # BEGIN SOLUTION
    # 1. f(t) for t = 0, ..., T, in float64: the first betas, about 4e-5, are 1 minus a ratio that close to 1, and
    #    float32 (spacing 6e-8 near 1) would get them wrong by up to 0.14%
    t = torch.arange(max_steps + 1, dtype=torch.float64)
    f = torch.cos((t / max_steps + s) / (1 + s) * math.pi / 2) ** 2
    alpha_bars = f / f[0]
    # 2. the betas of consecutive ratios: entry t - 1 is 1 - alpha_bar_t / alpha_bar_{t-1}
    betas = 1 - alpha_bars[1:] / alpha_bars[:-1]
    return betas.clamp(max=MAX_BETA).float()
    # END SOLUTION


def predict_x0(x_t: Tensor, eps: Tensor, t: int | Tensor, schedule: NoiseSchedule) -> Tensor:
    """The clean image that x_t and a noise prediction point to: DDIM eq. 12's "predicted x_0" (eq. 4 solved for x_0).

        x0_hat = (x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t)

    The same equation as Part 1's `reconstruct`, here for the samplers: t may be one int for the whole batch, which
    `reconstruct` takes once per image.

    Args:
        x_t: shape (B, C, H, W), float.
        eps: the (predicted) noise in x_t, shape (B, C, H, W).
        t: an int in {1, ..., T} for every image, or a (B,) long tensor, one t per image.
        schedule: the model's NoiseSchedule.
    Returns:
        x0_hat, shape (B, C, H, W), the dtype of x_t.
    """
    # BEGIN SOLUTION
    # one int t for the batch becomes one t per image; a (B,) tensor stays as it is
    num_steps = torch.as_tensor(t, device=x_t.device).expand(x_t.shape[0])
    return reconstruct(x_t, eps, num_steps, schedule)
    # END SOLUTION


def ddim_step(x_t: Tensor, eps: Tensor, t: int, t_prev: int, schedule: NoiseSchedule, eta: float) -> Tensor:
    """One step of the DDIM sampler from time t back to time t_prev < t (Song et al. 2021, eq. 12 and 16).

        x0_hat   = predict_x0(x_t, eps, t)
        sigma    = eta * sqrt((1 - alpha_bar_prev) / (1 - alpha_bar_t)) * sqrt(1 - alpha_bar_t / alpha_bar_prev)
        x_prev   = sqrt(alpha_bar_prev) x0_hat  +  sqrt(1 - alpha_bar_prev - sigma^2) eps  +  sigma z,   z ~ N(0, I)

    with alpha_bar_prev = alpha_bar_{t_prev} and alpha_bar_0 = 1. The first term is where the clean image is, the
    second points back along the predicted noise, the third is fresh noise. eta = 0 adds none: the step is
    deterministic. eta = 1 with t_prev = t - 1 gives sigma^2 = (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) beta_t, the
    variance of DDPM's posterior q(x_{t-1} | x_t, x_0) (DDPM eq. 7), and the same mean as DDPM's sampler.

    Args:
        x_t: shape (B, C, H, W).
        eps: the model's noise prediction eps_theta(x_t, t), shape (B, C, H, W).
        t: the current step, an int in {1, ..., T}.
        t_prev: the step to go to, an int in {0, ..., t - 1}; 0 is the last step, to the clean image.
        schedule: the model's NoiseSchedule.
        eta: 0 (deterministic DDIM) to 1 (DDPM-like); a float.
    Returns:
        x_{t_prev}, shape (B, C, H, W), the dtype of x_t.
    """
    # BEGIN SOLUTION
    # 1. alpha_bar at both ends; at t_prev = 0 nothing is left of the noise
    alpha_bar = schedule.alpha_bar(t).to(x_t.dtype)
    alpha_bar_prev = schedule.alpha_bar(t_prev).to(x_t.dtype) if t_prev > 0 else torch.ones_like(alpha_bar)
    # 2. where the clean image is, by the model's account
    x0_hat = predict_x0(x_t, eps, t, schedule)
    # 3. the fresh noise's standard deviation, eq. 16; it is 0 at t_prev = 0, whatever eta
    sigma = eta * torch.sqrt((1 - alpha_bar_prev) / (1 - alpha_bar) * (1 - alpha_bar / alpha_bar_prev))
    # 4. back to x0_hat's noise level along the predicted noise, eq. 12 (clamped: rounding can make it -1e-8)
    direction = torch.sqrt((1 - alpha_bar_prev - sigma**2).clamp(min=0)) * eps
    x_prev = torch.sqrt(alpha_bar_prev) * x0_hat + direction
    if eta > 0:
        x_prev = x_prev + sigma * torch.randn_like(x_t)
    return x_prev
    # END SOLUTION


@torch.no_grad()
def ddim_sample(
    model: DiffusionModel, n_samples: int, steps: int, eta: float = 0.0, x_T: Tensor | None = None
) -> Tensor:
    """Generate images in `steps` model calls with DDIM (Song et al. 2021, section 4.2): x_T, then `ddim_step` down the
    subsequence tau_S = T, ..., tau_1 = 1 of `spaced_steps(T, steps)`, then to x_0.

        x = x_T ~ N(0, I)
        for i = S, ..., 1:
            x = ddim_step(x, eps_theta(x, tau_i), tau_i, tau_{i-1}, schedule, eta)      with tau_0 = 0
        return x

    With steps = T and eta = 1 this is DDPM's sampler with sigma_t^2 the posterior variance.

    Args:
        model: a trained DiffusionModel (or any model(x, t) -> eps, e.g. one with guidance); its schedule gives T and
            the tables, and the device (`model.noise_schedule.betas.device`).
        n_samples: how many images.
        steps: S, the number of model calls, from 1 to T.
        eta: 0 for deterministic DDIM, 1 for DDPM-like noise.
        x_T: the starting noise, shape (n_samples, C, H, W); None draws it. Given the same x_T, eta = 0 gives the same
            images every time.
    Returns:
        x_0, shape (n_samples, C, H, W).
    """
    schedule = model.noise_schedule
    device = schedule.betas.device if schedule is not None else model.device  # the latter says how to give one
    # BEGIN SOLUTION
    x = torch.randn(n_samples, *model.image_shape, device=device) if x_T is None else x_T.to(device)
    taus = spaced_steps(len(schedule), steps).tolist()
    previous = [0] + taus[:-1]  # tau_{i-1}, with tau_0 = 0: the clean image
    for t, t_prev in zip(reversed(taus), reversed(previous)):
        eps = model(x, torch.full((n_samples,), t, device=device, dtype=torch.long))
        x = ddim_step(x, eps, t, t_prev, schedule, eta)
    return x
    # END SOLUTION


# --------------------------------------------------------------------------------------------------------------------
# Class conditioning and classifier-free guidance


def drop_labels(labels: Tensor, p: float, no_label: int) -> Tensor:
    """Hide each label behind the "no label" index with probability p: classifier-free guidance's training trick
    (Ho and Salimans 2022, Algorithm 1, line 3, "c <- empty with probability p_uncond").

    Trained this way, one network learns both eps(x_t, t, y) and the unconditional eps(x_t, t, no label).

    Args:
        labels: class indices y, shape (B,), long, in {0, ..., K - 1}.
        p: the probability of dropping each label, in [0, 1], independently per label.
        no_label: the index that means "no label", K (one past the last class): label 0 is a real class.
    Returns:
        a new long tensor of shape (B,): each entry is `no_label` with probability p, else the label. `labels` is left
        unchanged.
    """
    # BEGIN SOLUTION
    dropped = torch.rand(labels.shape, device=labels.device) < p
    return torch.where(dropped, torch.full_like(labels, no_label), labels)
    # END SOLUTION


@dataclass(frozen=True)
class ConditionalUnetConfig(UnetConfig):
    """Sizes of the class-conditional U-Net: Part 2's, and the number of classes."""

    num_classes: int = 10  # K; the label embedding has K + 1 rows, the last one for "no label"


class TimeAndLabelEmbedding(nn.Module):
    """The U-Net's time embedding plus a learned embedding of the class label: t_emb(t) + label_emb(y).

    It takes the place of the U-Net's `time_mlp`, whose output every residual block adds to its features, so the
    label reaches every block the way t does. Its input packs t and y side by side, `conditions` of shape (B, 2), so
    that Part 2's `Unet.forward` passes it on unchanged.
    """

    def __init__(self, time_mlp: nn.Module, label_emb: nn.Embedding):
        super().__init__()
        self.time_mlp = time_mlp
        self.label_emb = label_emb

    def forward(self, conditions: Tensor) -> Tensor:
        """conditions: shape (B, 2), t in column 0 and y in column 1. Returns shape (B, E)."""
        num_steps, labels = conditions.unbind(dim=1)
        return self.time_mlp(num_steps) + self.label_emb(labels.long())


class ConditionalUnet(Unet):
    """Part 2's U-Net, told which class to draw: eps_theta(x_t, t, y) (Ho and Salimans 2022, section 3).

    The label y in {0, ..., K - 1}, or K for "no label", picks a row of a learned embedding nn.Embedding(K + 1, E),
    E = 4 * config.channels the size of the time embedding, and that row is added to the time embedding: wrap the
    U-Net's `time_mlp` in a `TimeAndLabelEmbedding` (attribute name `label_emb` for the table). Everything else is
    Part 2's U-Net, unchanged.

    Args:
        config: a ConditionalUnetConfig: Part 2's sizes and num_classes = K.
        noise_schedule: the schedule it denoises for.
    """

    def __init__(self, config: ConditionalUnetConfig, noise_schedule: nn.Module | None = None):
        super().__init__(config, noise_schedule)
        # BEGIN SOLUTION
        # K + 1 rows: the last, index K, is the learned "no label" token
        label_emb = nn.Embedding(config.num_classes + 1, 4 * config.channels)
        self.time_mlp = TimeAndLabelEmbedding(self.time_mlp, label_emb)
        # END SOLUTION

    def forward(self, images: Tensor, num_steps: Tensor, labels: Tensor | None = None) -> Tensor:
        """Predict the noise in `images` of class `labels`.

        Args:
            images: x_t, shape (B, C, H, W).
            num_steps: t, shape (B,), ints in {1, ..., T}.
            labels: y, shape (B,), ints in {0, ..., K} (K: no label); None means no label for every image.
        Returns:
            eps_theta(x_t, t, y), shape (B, C, H, W).

        Part 2's `Unet.forward` hands its second argument to `self.time_mlp`: give it t and y packed as (B, 2).
        """
        # BEGIN SOLUTION
        if labels is None:
            labels = torch.full_like(num_steps, self.config.num_classes)
        conditions = rearrange([num_steps, labels.to(num_steps.dtype)], "two b -> b two")  # (B, 2)
        return super().forward(images, conditions)
        # END SOLUTION


def conditional_loss(model: ConditionalUnet, x_0: Tensor, labels: Tensor, p_uncond: float = 0.1) -> Tensor:
    """The loss of one labelled minibatch: Part 1's `diffusion_loss` with the labels, a fraction of them dropped
    (Ho and Salimans 2022, Algorithm 1).

        y = drop_labels(y, p_uncond, no_label = K)
        t, eps, x_t as in Part 1's noise_img
        loss = || eps - eps_theta(x_t, t, y) ||^2

    The given loop trains with it: `fit(model, partial(conditional_loss, p_uncond=0.1), images, ..., labels=labels)`.

    Args:
        model: a ConditionalUnet with its noise schedule.
        x_0: clean images, shape (B, C, H, W), in [-1, 1].
        labels: their classes, shape (B,), long.
        p_uncond: the probability of training a label as "no label".
    Returns:
        the mean squared error, a scalar with gradients.
    """
    # BEGIN SOLUTION
    labels = drop_labels(labels, p_uncond, model.config.num_classes)
    num_steps, noise, x_t = noise_img(x_0, model.noise_schedule)
    return F.mse_loss(model(x_t, num_steps, labels), noise)
    # END SOLUTION


def guided_eps(model: ConditionalUnet, x_t: Tensor, num_steps: Tensor, labels: Tensor, w: float) -> Tensor:
    """The classifier-free guided noise prediction (Ho and Salimans 2022, eq. 6):

        eps = (1 + w) eps_theta(x_t, t, y) - w eps_theta(x_t, t, no label)

    w = 0 is the plain conditional model; a larger w pushes samples toward what makes them look like class y, and
    away from the unconditional prediction. Both predictions come from ONE forward call on a batch of 2B (the B images
    with their labels, then the same B images with "no label"): one large batch runs faster than two small ones.

    Args:
        model: a ConditionalUnet; `model.config.num_classes` is the "no label" index.
        x_t: shape (B, C, H, W).
        num_steps: t, shape (B,), long.
        labels: y, shape (B,), long, in {0, ..., K - 1}.
        w: the guidance weight, >= 0.
    Returns:
        the guided eps, shape (B, C, H, W).
    """
    # BEGIN SOLUTION
    no_label = torch.full_like(labels, model.config.num_classes)
    both = model(torch.cat([x_t, x_t]), torch.cat([num_steps, num_steps]), torch.cat([labels, no_label]))  # (2B, ...)
    eps_cond, eps_uncond = both.chunk(2)
    return (1 + w) * eps_cond - w * eps_uncond
    # END SOLUTION


# --------------------------------------------------------------------------------------------------------------------
# The v-parameterisation


def v_target(x_0: Tensor, eps: Tensor, t: int | Tensor, schedule: NoiseSchedule) -> Tensor:
    """The v that a v-predicting model learns (Salimans and Ho 2022, section 4):

        v = sqrt(alpha_bar_t) eps - sqrt(1 - alpha_bar_t) x_0

    Writing sqrt(alpha_bar_t) = cos(phi) and sqrt(1 - alpha_bar_t) = sin(phi), x_t = cos(phi) x_0 + sin(phi) eps and
    v = dx_t / dphi: the velocity of x_t along the noise angle (their appendix D).

    Args:
        x_0: clean images, shape (B, C, H, W).
        eps: the noise that made x_t, shape (B, C, H, W).
        t: an int in {1, ..., T} for every image, or a (B,) long tensor, one t per image.
        schedule: the NoiseSchedule.
    Returns:
        v, shape (B, C, H, W), the dtype of x_0.
    """
    # BEGIN SOLUTION
    # one int t for the batch becomes one t per image, then (B, 1, 1, 1) to scale each image
    alpha_bar = per_image(schedule.alpha_bar(torch.as_tensor(t, device=x_0.device).expand(x_0.shape[0])), x_0)
    return alpha_bar.sqrt() * eps - (1 - alpha_bar).sqrt() * x_0
    # END SOLUTION


def predictions_from_v(x_t: Tensor, v: Tensor, t: int | Tensor, schedule: NoiseSchedule) -> tuple[Tensor, Tensor]:
    """The clean image and the noise that x_t and a v prediction point to (Salimans and Ho 2022, section 4):

        x0_hat  = sqrt(alpha_bar_t) x_t - sqrt(1 - alpha_bar_t) v
        eps_hat = sqrt(1 - alpha_bar_t) x_t + sqrt(alpha_bar_t) v

    A rotation by the angle phi: nothing is divided, so an error in v is never magnified, at any t.

    Args:
        x_t: shape (B, C, H, W).
        v: the (predicted) v at x_t, shape (B, C, H, W).
        t: an int in {1, ..., T} for every image, or a (B,) long tensor, one t per image.
        schedule: the NoiseSchedule.
    Returns:
        (x0_hat, eps_hat), each shape (B, C, H, W), the dtype of x_t.
    """
    # BEGIN SOLUTION
    alpha_bar = per_image(schedule.alpha_bar(torch.as_tensor(t, device=x_t.device).expand(x_t.shape[0])), x_t)
    signal, noise = alpha_bar.sqrt(), (1 - alpha_bar).sqrt()
    return signal * x_t - noise * v, noise * x_t + signal * v
    # END SOLUTION
