"""The graders' own arithmetic of the diffusion equations, each written once and called by every part's graders.

It judges the reference solutions and the given helpers of `utils.engine` as much as the students' code, so it imports
neither: each formula is restated here from the papers. Functions take floats or tensors and compute in the dtype they
are given; the graders pass float64 where rounding would blur a mistake.

    alpha_bar_after     alpha_bar_n = prod_{s=1..n} (1 - beta_s)                    DDPM eq. 4
    x_t_of              x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps      DDPM eq. 4
    x_0_of              x_0 = (x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t)  eq. 4 solved for x_0
    eps_of              eps = (x_t - sqrt(alpha_bar_t) x_0) / sqrt(1 - alpha_bar_t)  eq. 4 solved for eps
    posterior_of        mu_tilde_t and beta_tilde_t of q(x_{t-1} | x_t, x_0)         DDPM eq. 7
    v_of                v = sqrt(alpha_bar_t) eps - sqrt(1 - alpha_bar_t) x_0        Salimans and Ho, section 4
    ddim_variance       sigma^2 of a DDIM step                                       DDIM eq. 16
    ddim_coefficients   the mean of a DDIM step as c_x x_t + c_eps eps, and sigma^2  DDIM eq. 12
    cosine_f            f(t) = cos^2(((t / T + s) / (1 + s)) pi / 2)                 Improved DDPM eq. 17
    betas_from          beta_t = 1 - alpha_bar_t / alpha_bar_{t-1}                   Improved DDPM eq. 17

`alpha_bar` arguments are alpha_bar_t shaped to broadcast against the images, or one number.
"""

import math

import torch
from torch import Tensor


def alpha_bar_after(betas: Tensor, n: int) -> float:
    """alpha_bar_n = prod_{s=1..n} (1 - beta_s), with alpha_bar_0 = 1, in float64."""
    return float(torch.prod(1 - betas[:n].double()))


def x_t_of(x_0: Tensor, eps: Tensor, alpha_bar: Tensor | float) -> Tensor:
    """x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps (DDPM eq. 4)."""
    return alpha_bar**0.5 * x_0 + (1 - alpha_bar) ** 0.5 * eps


def x_0_of(x_t: Tensor, eps: Tensor, alpha_bar: Tensor | float) -> Tensor:
    """x_0 = (x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t): eq. 4 solved for x_0."""
    return (x_t - (1 - alpha_bar) ** 0.5 * eps) / alpha_bar**0.5


def eps_of(x_t: Tensor, x_0: Tensor, alpha_bar: Tensor | float) -> Tensor:
    """eps = (x_t - sqrt(alpha_bar_t) x_0) / sqrt(1 - alpha_bar_t): eq. 4 solved for the noise."""
    return (x_t - alpha_bar**0.5 * x_0) / (1 - alpha_bar) ** 0.5


def ddim_variance(alpha_bar: float, alpha_bar_prev: float, eta: float) -> float:
    """sigma^2 = eta^2 (1 - alpha_bar_prev) / (1 - alpha_bar_t) (1 - alpha_bar_t / alpha_bar_prev) (DDIM eq. 16)."""
    return eta**2 * (1 - alpha_bar_prev) / (1 - alpha_bar) * (1 - alpha_bar / alpha_bar_prev)


def ddim_coefficients(alpha_bar: float, alpha_bar_prev: float, eta: float) -> tuple[float, float, float]:
    """(c_x, c_eps, sigma^2) of one DDIM step: x_prev = c_x x_t + c_eps eps + sigma z (DDIM eq. 12), from

    x_prev = sqrt(alpha_bar_prev) x0_hat + sqrt(1 - alpha_bar_prev - sigma^2) eps + sigma z,   x0_hat = x_0_of(x_t, eps)

    with 1 - alpha_bar_prev - sigma^2 clamped at 0 against rounding."""
    sigma2 = ddim_variance(alpha_bar, alpha_bar_prev, eta)
    c_x = math.sqrt(alpha_bar_prev) / math.sqrt(alpha_bar)
    c_eps = -math.sqrt(alpha_bar_prev) * math.sqrt(1 - alpha_bar) / math.sqrt(alpha_bar) + math.sqrt(
        max(1 - alpha_bar_prev - sigma2, 0.0)
    )
    return c_x, c_eps, sigma2


def cosine_f(t: Tensor, T: int, s: float) -> Tensor:
    """f(t) = cos^2(((t / T + s) / (1 + s)) pi / 2), in t's dtype; alpha_bar_t = f(t) / f(0) (Improved DDPM eq. 17)."""
    return torch.cos((t / T + s) / (1 + s) * math.pi / 2) ** 2


def betas_from(alpha_bars: Tensor) -> Tensor:
    """beta_t = 1 - alpha_bar_t / alpha_bar_{t-1}, for `alpha_bars` holding t = 0, ..., T (alpha_bar_0 first)."""
    return 1 - alpha_bars[1:] / alpha_bars[:-1]


def posterior_of(
    x_t: Tensor, x_0: Tensor, beta: Tensor, alpha_bar: Tensor, alpha_bar_prev: Tensor
) -> tuple[Tensor, Tensor]:
    """(mu_tilde_t, beta_tilde_t) of q(x_{t-1} | x_t, x_0) (DDPM eq. 7), from beta_t, alpha_bar_t and alpha_bar_{t-1}
    shaped to broadcast against the images (alpha_bar_0 = 1 at t = 1):

        mu_tilde_t   = sqrt(alpha_bar_{t-1}) beta_t / (1 - alpha_bar_t) x_0
                       + sqrt(1 - beta_t) (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) x_t
        beta_tilde_t = (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) beta_t
    """
    mean = (
        alpha_bar_prev**0.5 * beta / (1 - alpha_bar) * x_0
        + (1 - beta) ** 0.5 * (1 - alpha_bar_prev) / (1 - alpha_bar) * x_t
    )
    return mean, (1 - alpha_bar_prev) / (1 - alpha_bar) * beta


def v_of(x_0: Tensor, eps: Tensor, alpha_bar: Tensor | float) -> Tensor:
    """v = sqrt(alpha_bar_t) eps - sqrt(1 - alpha_bar_t) x_0 (Salimans and Ho 2022, section 4)."""
    return alpha_bar**0.5 * eps - (1 - alpha_bar) ** 0.5 * x_0
