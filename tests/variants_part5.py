"""Other ways to write each Part 5 step: correct ones the graders must accept, and common mistakes they must catch,
each registered once in the part's catalogue with the message its grader must give."""

import math

import numpy as np
import torch
import torch.nn.functional as F

from solutions import part2
from solutions import part5 as ref
from tests.proofs import Catalogue
from utils.engine.model import per_image

catalogue = Catalogue()
correct, mistake = catalogue.correct, catalogue.mistake

# ------------------------------------------------------------------------------------------------------ pf_ode_drift


@correct("pf_ode_drift")
def pf_ode_drift_eps(model, z, sigma):
    """Correct: (z - D) / sigma simplified to eps_theta itself."""
    t = torch.full((z.shape[0],), ref.sigma_to_t(model.noise_schedule, sigma), device=z.device)
    return model(z / math.sqrt(1 + sigma**2), t)


@correct("pf_ode_drift")
def pf_ode_drift_alpha_bar(model, z, sigma):
    """Correct: through sqrt(alpha_bar) = 1 / sqrt(1 + sigma^2) and Part 4's x0_hat, t on the model's device."""
    sqrt_alpha_bar = (1 + sigma**2) ** -0.5
    x_t = sqrt_alpha_bar * z
    t = ref.sigma_to_t(model.noise_schedule, sigma) * torch.ones(len(z), device=model.device)
    eps = model(x_t, t)
    x0_hat = (x_t - math.sqrt(1 - sqrt_alpha_bar**2) * eps) / sqrt_alpha_bar
    return (z - x0_hat) / sigma


@mistake("pf_ode_drift", says="made on the CPU: pass device=")
def pf_ode_drift_t_on_cpu(model, z, sigma):
    t = torch.full((z.shape[0],), ref.sigma_to_t(model.noise_schedule, sigma))
    return model(z / math.sqrt(1 + sigma**2), t)


@mistake("pf_ode_drift", says="made on the CPU: pass device=")
def pf_ode_drift_alpha_bar_t_on_cpu(model, z, sigma):
    sqrt_alpha_bar = (1 + sigma**2) ** -0.5
    x_t = sqrt_alpha_bar * z
    t = ref.sigma_to_t(model.noise_schedule, sigma) * torch.ones(len(z))
    eps = model(x_t, t)
    x0_hat = (x_t - math.sqrt(1 - sqrt_alpha_bar**2) * eps) / sqrt_alpha_bar
    return (z - x0_hat) / sigma


@mistake("pf_ode_drift", says="as a Python number")
def pf_ode_drift_float_t(model, z, sigma):
    return model(z / math.sqrt(1 + sigma**2), ref.sigma_to_t(model.noise_schedule, sigma))


@mistake("pf_ode_drift", says="not one value per image")
def pf_ode_drift_one_t(model, z, sigma):
    t = torch.tensor([ref.sigma_to_t(model.noise_schedule, sigma)], device=z.device)
    return model(z / math.sqrt(1 + sigma**2), t)


@mistake("pf_ode_drift", says="changed its argument `z`")
def pf_ode_drift_in_place(model, z, sigma):
    t = torch.full((z.shape[0],), ref.sigma_to_t(model.noise_schedule, sigma), device=z.device)
    return model(z.div_(math.sqrt(1 + sigma**2)), t)


@mistake("pf_ode_drift", says="float64 where the model takes float32")
def pf_ode_drift_float64(model, z, sigma):
    t = torch.full((z.shape[0],), ref.sigma_to_t(model.noise_schedule, sigma), device=z.device)
    return model(z.double() / math.sqrt(1 + sigma**2), t)


@mistake("pf_ode_drift", says="1/sigma factor")
def pf_ode_drift_no_one_over_sigma(model, z, sigma):
    t = torch.full((z.shape[0],), ref.sigma_to_t(model.noise_schedule, sigma), device=z.device)
    denoised = z - sigma * model(z / math.sqrt(1 + sigma**2), t)
    return z - denoised


@mistake("pf_ode_drift", says="sign")
def pf_ode_drift_sign(model, z, sigma):
    t = torch.full((z.shape[0],), ref.sigma_to_t(model.noise_schedule, sigma), device=z.device)
    denoised = z - sigma * model(z / math.sqrt(1 + sigma**2), t)
    return (denoised - z) / sigma


@mistake("pf_ode_drift", says="not z")
def pf_ode_drift_feeds_z(model, z, sigma):
    t = torch.full((z.shape[0],), ref.sigma_to_t(model.noise_schedule, sigma), device=z.device)
    return model(z, t)


@mistake("pf_ode_drift", says="not sigma itself")
def pf_ode_drift_sigma_as_t(model, z, sigma):
    return model(z / math.sqrt(1 + sigma**2), torch.full((z.shape[0],), sigma))


@mistake("pf_ode_drift", says="not rounded")
def pf_ode_drift_rounded_t(model, z, sigma):
    t = torch.full((z.shape[0],), round(ref.sigma_to_t(model.noise_schedule, sigma)))
    return model(z / math.sqrt(1 + sigma**2), t)


# ----------------------------------------------------------------------------------------------------- karras_sigmas


@correct("karras_sigmas")
def karras_sigmas_loop(n, sigma_min, sigma_max, rho=7.0):
    """Correct: a Python loop, in Python's floats (float64)."""
    values = []
    for i in range(n):
        values.append((sigma_max ** (1 / rho) + i / (n - 1) * (sigma_min ** (1 / rho) - sigma_max ** (1 / rho))) ** rho)
    return torch.tensor(values + [0.0], dtype=torch.float64)


@mistake("karras_sigmas", says="float32")
def karras_sigmas_float32(n, sigma_min, sigma_max, rho=7.0):
    ramp = torch.linspace(0, 1, n)
    low, high = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    return torch.cat([(high + ramp * (low - high)) ** rho, torch.zeros(1)])


@mistake("karras_sigmas", says="one noise level is missing")
def karras_sigmas_level_missing(n, sigma_min, sigma_max, rho=7.0):
    return torch.cat([ref.karras_sigmas(n - 1, sigma_min, sigma_max, rho)[:-1], torch.zeros(1, dtype=torch.float64)])


@correct("karras_sigmas")
def karras_sigmas_numpy(n, sigma_min, sigma_max, rho=7.0):
    """Correct: numpy's linspace between the two ends in sigma^(1/rho)."""
    return torch.from_numpy(np.append(np.linspace(sigma_max ** (1 / rho), sigma_min ** (1 / rho), n) ** rho, 0.0))


@mistake("karras_sigmas", says="exponent rho is missing")
def karras_sigmas_no_rho(n, sigma_min, sigma_max, rho=7.0):
    return torch.cat(
        [torch.linspace(sigma_max, sigma_min, n, dtype=torch.float64), torch.zeros(1, dtype=torch.float64)]
    )


@mistake("karras_sigmas", says="sigma_n = 0")
def karras_sigmas_no_zero(n, sigma_min, sigma_max, rho=7.0):
    return ref.karras_sigmas(n, sigma_min, sigma_max, rho)[:-1]


@mistake("karras_sigmas", says="rise")
def karras_sigmas_rising(n, sigma_min, sigma_max, rho=7.0):
    return torch.cat(
        [ref.karras_sigmas(n, sigma_min, sigma_max, rho)[:-1].flip(0), torch.zeros(1, dtype=torch.float64)]
    )


@mistake("karras_sigmas", says="i / \\(n - 1\\)")
def karras_sigmas_over_n(n, sigma_min, sigma_max, rho=7.0):
    i = torch.arange(n, dtype=torch.float64)
    sigmas = (sigma_max ** (1 / rho) + i / n * (sigma_min ** (1 / rho) - sigma_max ** (1 / rho))) ** rho
    return torch.cat([sigmas, torch.zeros(1, dtype=torch.float64)])


# --------------------------------------------------------------------------------------------------------- heun_step


@correct("heun_step")
def heun_step_trapezoid(drift, x, s, s_next):
    """Correct: written as Euler's step plus half the change of slope."""
    h = s_next - s
    d = drift(x, s)
    x_euler = x + h * d
    if s_next == 0:
        return x_euler
    return x_euler + h / 2 * (drift(x_euler, s_next) - d)


@mistake("heun_step", says="only Euler")
def heun_step_euler_only(drift, x, s, s_next):
    return x + (s_next - s) * drift(x, s)


@mistake("heun_step", says="must stay Euler")
def heun_step_no_last_euler(drift, x, s, s_next):
    d = drift(x, s)
    x_next = x + (s_next - s) * d
    return x + (s_next - s) * (d + drift(x_next, s_next)) / 2


@mistake("heun_step", says="Euler's point")
def heun_step_slope_at_x(drift, x, s, s_next):
    d = drift(x, s)
    if s_next == 0:
        return x + (s_next - s) * d
    return x + (s_next - s) * (d + drift(x, s_next)) / 2


@mistake("heun_step", says="time s, not s_next")
def heun_step_slope_at_s(drift, x, s, s_next):
    d = drift(x, s)
    x_next = x + (s_next - s) * d
    if s_next == 0:
        return x_next
    return x + (s_next - s) * (d + drift(x_next, s)) / 2


@mistake("heun_step", says="replaces both")
def heun_step_second_slope_only(drift, x, s, s_next):
    d = drift(x, s)
    x_next = x + (s_next - s) * d
    if s_next == 0:
        return x_next
    return x + (s_next - s) * drift(x_next, s_next)


# -------------------------------------------------------------------------------------------------- flow_interpolate


@correct("flow_interpolate")
def flow_interpolate_lerp(x_0, eps, s):
    """Correct: torch.lerp."""
    return torch.lerp(x_0, eps, s.reshape(-1, 1, 1, 1)), eps - x_0


@correct("flow_interpolate")
def flow_interpolate_einsum(x_0, eps, s):
    """Correct: per-image scaling by einsum."""
    return x_0 + torch.einsum("b,bchw->bchw", s, eps - x_0), eps - x_0


@mistake("flow_interpolate", says="wrong way")
def flow_interpolate_reversed(x_0, eps, s):
    s = per_image(s, x_0)
    return s * x_0 + (1 - s) * eps, eps - x_0


@mistake("flow_interpolate", says="straight")
def flow_interpolate_vp(x_0, eps, s):
    s = per_image(s, x_0)
    return (1 - s).sqrt() * x_0 + s.sqrt() * eps, eps - x_0


@mistake("flow_interpolate", says="sign")
def flow_interpolate_velocity_sign(x_0, eps, s):
    s = per_image(s, x_0)
    return (1 - s) * x_0 + s * eps, x_0 - eps


@mistake("flow_interpolate", says="DDPM's target")
def flow_interpolate_eps_target(x_0, eps, s):
    s = per_image(s, x_0)
    return (1 - s) * x_0 + s * eps, eps


@mistake("flow_interpolate", says="not x_0")
def flow_interpolate_x0_target(x_0, eps, s):
    s = per_image(s, x_0)
    return (1 - s) * x_0 + s * eps, x_0


@mistake("flow_interpolate", says="does not depend on s")
def flow_interpolate_scaled_velocity(x_0, eps, s):
    s = per_image(s, x_0)
    return (1 - s) * x_0 + s * eps, s * (eps - x_0)


# ------------------------------------------------------------------------------------------------ flow_matching_loss


@correct("flow_matching_loss")
def flow_matching_loss_by_hand(model, x_0):
    """Correct: the interpolation and the mean written out, s from torch.empty().uniform_()."""
    s = torch.empty(len(x_0), device=x_0.device).uniform_(0, 1)
    eps = torch.randn(x_0.shape, device=x_0.device)
    x_s = x_0 + s.reshape(-1, 1, 1, 1) * (eps - x_0)
    return ((model(x_s, s) - (eps - x_0)) ** 2).mean()


@correct("flow_matching_loss")
def flow_matching_loss_numpy_rng(model, x_0):
    """Correct: s and eps from numpy's generator, moved to x_0's device."""
    rng = np.random.default_rng(torch.randint(0, 2**31, ()).item())
    s = torch.from_numpy(rng.random(len(x_0))).float().to(x_0.device)
    eps = torch.from_numpy(rng.standard_normal(tuple(x_0.shape))).float().to(x_0.device)
    x_s, velocity = ref.flow_interpolate(x_0, eps, s)
    return F.mse_loss(model(x_s, s), velocity)


@mistake("flow_matching_loss", says="made on the CPU: pass device=")
def flow_matching_loss_by_hand_on_cpu(model, x_0):
    s = torch.empty(len(x_0)).uniform_(0, 1)
    eps = torch.randn(x_0.shape)
    x_s = x_0 + s.reshape(-1, 1, 1, 1) * (eps - x_0)
    return ((model(x_s, s) - (eps - x_0)) ** 2).mean()


@mistake("flow_matching_loss", says="made on the CPU: pass device=")
def flow_matching_loss_numpy_rng_on_cpu(model, x_0):
    rng = np.random.default_rng(torch.randint(0, 2**31, ()).item())
    s = torch.from_numpy(rng.random(len(x_0))).float()
    eps = torch.from_numpy(rng.standard_normal(tuple(x_0.shape))).float()
    x_s, velocity = ref.flow_interpolate(x_0, eps, s)
    return F.mse_loss(model(x_s, s), velocity)


@mistake("flow_matching_loss", says="a grid")
def flow_matching_loss_grid_s(model, x_0):
    s = torch.randint(0, 11, (len(x_0),), device=x_0.device) / 10
    x_s, velocity = ref.flow_interpolate(x_0, torch.randn_like(x_0), s)
    return F.mse_loss(model(x_s, s), velocity)


@mistake("flow_matching_loss", says="changed its argument `x_0`")
def flow_matching_loss_in_place(model, x_0):
    s = torch.rand(len(x_0), device=x_0.device)
    eps = torch.randn_like(x_0)
    velocity = eps - x_0
    x_s = x_0.mul_(1 - per_image(s, x_0)).add_(per_image(s, x_0) * eps)
    return F.mse_loss(model(x_s, s), velocity)


@mistake("flow_matching_loss", says="float64 where the model takes float32")
def flow_matching_loss_float64(model, x_0):
    s = torch.rand(len(x_0), device=x_0.device, dtype=torch.float64)
    x_s, velocity = ref.flow_interpolate(x_0.double(), torch.randn_like(x_0.double()), s)
    return F.mse_loss(model(x_s, s), velocity)


def _loss_with(model, x_0, s, eps=None, target="velocity"):
    eps = torch.randn_like(x_0) if eps is None else eps
    x_s, velocity = ref.flow_interpolate(x_0, eps, s.clamp(0, 1) if target != "raw_s" else s)
    wanted = {"velocity": velocity, "eps": eps, "minus": -velocity, "x_0": x_0, "raw_s": velocity}[target]
    return F.mse_loss(model(x_s, s), wanted)


@mistake("flow_matching_loss", says="Uniform\\[0, 1\\]")
def flow_matching_loss_randn_s(model, x_0):
    return _loss_with(model, x_0, torch.randn(len(x_0), device=x_0.device), target="raw_s")


@mistake("flow_matching_loss", says="one s for the whole batch")
def flow_matching_loss_one_s(model, x_0):
    return _loss_with(model, x_0, torch.rand(1, device=x_0.device).expand(len(x_0)))


@mistake("flow_matching_loss", says="logit-normal")
def flow_matching_loss_logit_normal(model, x_0):
    return _loss_with(model, x_0, torch.sigmoid(torch.randn(len(x_0), device=x_0.device)))


@mistake("flow_matching_loss", says="scales it itself")
def flow_matching_loss_scaled_s(model, x_0):
    s = torch.rand(len(x_0), device=x_0.device)
    x_s, velocity = ref.flow_interpolate(x_0, torch.randn_like(x_0), s)
    return F.mse_loss(model(x_s, s * ref.FLOW_TIME_SCALE), velocity)


@mistake("flow_matching_loss", says="DDPM's target")
def flow_matching_loss_eps_target(model, x_0):
    return _loss_with(model, x_0, torch.rand(len(x_0), device=x_0.device), target="eps")


@mistake("flow_matching_loss", says="sign")
def flow_matching_loss_velocity_sign(model, x_0):
    return _loss_with(model, x_0, torch.rand(len(x_0), device=x_0.device), target="minus")


@mistake("flow_matching_loss", says="s = 0 is the image")
def flow_matching_loss_reversed(model, x_0):
    s = torch.rand(len(x_0), device=x_0.device)
    eps = torch.randn_like(x_0)
    x_s = per_image(s, x_0) * x_0 + (1 - per_image(s, x_0)) * eps
    return F.mse_loss(model(x_s, s), eps - x_0)


@mistake("flow_matching_loss", says="torch.rand")
def flow_matching_loss_uniform_noise(model, x_0):
    return _loss_with(model, x_0, torch.rand(len(x_0), device=x_0.device), eps=torch.rand_like(x_0) * 2 - 1)


@mistake("flow_matching_loss", says="summed")
def flow_matching_loss_summed(model, x_0):
    s = torch.rand(len(x_0), device=x_0.device)
    x_s, velocity = ref.flow_interpolate(x_0, torch.randn_like(x_0), s)
    return ((model(x_s, s) - velocity) ** 2).sum()


# -------------------------------------------------------------------------------------------------- flow_predictions


@mistake("flow_predictions", says="made on the CPU: pass device=")
def flow_predictions_one_on_cpu(x_s, v, s):
    """1 - s with a `one` made by torch.ones: on the CPU, whatever the device of x_s."""
    s = s.reshape(-1, 1, 1, 1)
    one = torch.ones(len(s), 1, 1, 1)
    return x_s - s * v, x_s + (one - s) * v


@correct("flow_predictions")
def flow_predictions_image_then_noise(x_s, v, s):
    """Correct: x0_hat first, then eps_hat = x0_hat + v (the velocity is eps - x_0), s reshaped with view."""
    x0_hat = x_s - s.view(-1, 1, 1, 1) * v
    return x0_hat, x0_hat + v


@correct("flow_predictions")
def flow_predictions_solved(x_s, v, s):
    """Correct: the 2x2 system [[1 - s, s], [-1, 1]] (x_0, eps) = (x_s, v) solved per image with torch.linalg.solve."""
    one = torch.ones_like(s)
    matrix = torch.stack([torch.stack([1 - s, s], -1), torch.stack([-one, one], -1)], -2)  # (B, 2, 2)
    rhs = torch.stack([x_s.flatten(1), v.flatten(1)], 1)  # (B, 2, C*H*W)
    x_0, eps = torch.linalg.solve(matrix, rhs).unbind(1)
    return x_0.view_as(x_s), eps.view_as(x_s)


@mistake("flow_predictions", says="wrong order")
def flow_predictions_swapped(x_s, v, s):
    s = per_image(s, x_s)
    return x_s + (1 - s) * v, x_s - s * v


@mistake("flow_predictions", says="the velocity's sign")
def flow_predictions_sign(x_s, v, s):
    s = per_image(s, x_s)
    return x_s + s * v, x_s - (1 - s) * v


@mistake("flow_predictions", says="1 - s in place of s")
def flow_predictions_time_reversed(x_s, v, s):
    s = per_image(s, x_s)
    return x_s - (1 - s) * v, x_s + s * v


@mistake("flow_predictions", says="s in place of 1 - s")
def flow_predictions_eps_time_reversed(x_s, v, s):
    s = per_image(s, x_s)
    return x_s - s * v, x_s + s * v


# ------------------------------------------------------------------------------------------------------- flow_sample


@correct("flow_sample")
@torch.no_grad()
def flow_sample_loop_index(model, n_samples, steps, method="euler", x_1=None):
    """Correct: step size 1/steps, counting i up; Heun written out; s made like x."""
    x = torch.randn(n_samples, *model.image_shape, device=model.device) if x_1 is None else x_1
    h = 1 / steps
    for i in range(steps):
        s, s_next = 1 - i * h, 1 - (i + 1) * h
        v = model(x, x.new_full((len(x),), s))
        if method == "heun" and i < steps - 1:
            v_end = model(x - h * v, x.new_full((len(x),), s_next))
            v = (v + v_end) / 2
        x = x - h * v
    return x


@mistake("flow_sample", says="made on the CPU: pass device=")
@torch.no_grad()
def flow_sample_loop_index_on_cpu(model, n_samples, steps, method="euler", x_1=None):
    x = torch.randn(n_samples, *model.image_shape) if x_1 is None else x_1
    h = 1 / steps
    for i in range(steps):
        s, s_next = 1 - i * h, 1 - (i + 1) * h
        v = model(x, torch.full((len(x),), s))
        if method == "heun" and i < steps - 1:
            v_end = model(x - h * v, torch.full((len(x),), s_next))
            v = (v + v_end) / 2
        x = x - h * v
    return x


@mistake("flow_sample", says="changed its argument `x_1`")
@torch.no_grad()
def flow_sample_in_place(model, n_samples, steps, method="euler", x_1=None):
    x = torch.randn(n_samples, *model.image_shape, device=model.device) if x_1 is None else x_1
    times = torch.linspace(1, 0, steps + 1, dtype=torch.float64).tolist()
    for s, s_next in zip(times[:-1], times[1:]):
        v = lambda y, u: model(y, torch.full((len(y),), u, device=y.device))  # noqa: E731
        if method == "heun":
            x = ref.heun_step(v, x, s, s_next)
        else:
            x += (s_next - s) * v(x, s)
    return x


@mistake("flow_sample", says="as a Python number")
@torch.no_grad()
def flow_sample_float_s(model, n_samples, steps, method="euler", x_1=None):
    x = torch.randn(n_samples, *model.image_shape, device=model.device) if x_1 is None else x_1
    times = torch.linspace(1, 0, steps + 1, dtype=torch.float64).tolist()
    for s, s_next in zip(times[:-1], times[1:]):
        x = ref.heun_step(model, x, s, s_next) if method == "heun" else x + (s_next - s) * model(x, s)
    return x


@mistake("flow_sample", says="without gradients")
def flow_sample_with_gradients(model, n_samples, steps, method="euler", x_1=None):
    x = torch.randn(n_samples, *model.image_shape, device=model.device) if x_1 is None else x_1
    return _flow_loop(model, x, torch.linspace(1, 0, steps + 1).tolist(), method)


@mistake("flow_sample", says="a hair away from 0")
@torch.no_grad()
def flow_sample_subtracted_times(model, n_samples, steps, method="euler", x_1=None):
    x = torch.randn(n_samples, *model.image_shape, device=model.device) if x_1 is None else x_1
    s, h = 1.0, 1 / steps
    while s > 0:
        s_next = max(s - h, 0.0)
        v = lambda y, u: model(y, torch.full((len(y),), u, device=y.device))  # noqa: E731
        x = ref.heun_step(v, x, s, s_next) if method == "heun" else x + (s_next - s) * v(x, s)
        s -= h
    return x


@mistake("flow_sample", says="float64 where the model takes float32")
@torch.no_grad()
def flow_sample_float64(model, n_samples, steps, method="euler", x_1=None):
    x = (torch.randn(n_samples, *model.image_shape, device=model.device) if x_1 is None else x_1).double()
    return _flow_loop(model, x, torch.linspace(1, 0, steps + 1).tolist(), method)


def _flow_loop(model, x, times, method, sign=1.0):
    for s, s_next in zip(times[:-1], times[1:]):
        v = lambda y, u: model(y, torch.full((len(y),), u, device=y.device))  # noqa: E731
        if method == "heun":
            x = ref.heun_step(v, x, s, s_next)
        else:
            x = x + sign * (s_next - s) * v(x, s)
    return x


@mistake("flow_sample", says="s = 1")
@torch.no_grad()
def flow_sample_forward_time(model, n_samples, steps, method="euler", x_1=None):
    x = torch.randn(n_samples, *model.image_shape, device=model.device) if x_1 is None else x_1
    return _flow_loop(model, x, torch.linspace(0, 1, steps + 1).tolist(), method)


@mistake("flow_sample", says="sign")
@torch.no_grad()
def flow_sample_step_sign(model, n_samples, steps, method="euler", x_1=None):
    x = torch.randn(n_samples, *model.image_shape, device=model.device) if x_1 is None else x_1
    return _flow_loop(model, x, torch.linspace(1, 0, steps + 1).tolist(), "euler", sign=-1.0)


@mistake("flow_sample", says="Euler's step where Heun's")
@torch.no_grad()
def flow_sample_always_euler(model, n_samples, steps, method="euler", x_1=None):
    x = torch.randn(n_samples, *model.image_shape, device=model.device) if x_1 is None else x_1
    return _flow_loop(model, x, torch.linspace(1, 0, steps + 1).tolist(), "euler")


@mistake("flow_sample", says="calls")
@torch.no_grad()
def flow_sample_extra_step(model, n_samples, steps, method="euler", x_1=None):
    x = torch.randn(n_samples, *model.image_shape, device=model.device) if x_1 is None else x_1
    return _flow_loop(model, x, torch.linspace(1, 0, steps + 2).tolist(), method)


# ---------------------------------------------------------------------------------------------------------- FlowUnet


@correct("FlowUnet")
class FlowUnetTimesT(part2.Unet):
    """Correct: the scale written as a multiplication inside the call."""

    needs_schedule = False

    def forward(self, images, s):
        return super().forward(images, 1000.0 * s)


@mistake("FlowUnet", says="unscaled")
class FlowUnetUnscaled(ref.FlowUnet):
    def forward(self, images, s):
        return part2.Unet.forward(self, images, s)


@mistake("FlowUnet", says="rounded")
class FlowUnetRounded(ref.FlowUnet):
    def forward(self, images, s):
        return part2.Unet.forward(self, images, (s * ref.FLOW_TIME_SCALE).round())


@mistake("FlowUnet", says="needs_schedule = False")
class FlowUnetNeedsSchedule(part2.Unet):
    def forward(self, images, s):
        return super().forward(images, s * ref.FLOW_TIME_SCALE)


@mistake("FlowUnet", says="without a noise schedule")
class FlowUnetWithSchedule(ref.FlowUnet):
    def __init__(self, config, noise_schedule=None):
        from solutions.part1 import NoiseSchedule, linear_schedule

        super().__init__(config, NoiseSchedule(linear_schedule(1000)))


@correct("heun_step")
def heun_step_rk2(drift, x, s, s_next):
    """Correct: as the two-stage Runge-Kutta method with weights (1/2, 1/2), the times as tensors."""
    h = torch.tensor(s_next, dtype=torch.float64) - torch.tensor(s, dtype=torch.float64)
    k1 = drift(x, s)
    if s_next == 0:
        return x + h.item() * k1
    k2 = drift(x + h.item() * k1, s_next)
    return x + h.item() * (0.5 * k1 + 0.5 * k2)


@correct("flow_sample")
@torch.no_grad()
def flow_sample_float32_times(model, n_samples, steps, method="euler", x_1=None):
    """Correct: the times as a float32 tensor on the model's device, Heun through the reference heun_step, Euler as
    heun_step's first half."""
    x = torch.randn(n_samples, *model.image_shape, device=model.device) if x_1 is None else x_1
    times = torch.linspace(1, 0, steps + 1)
    for s, s_next in zip(times[:-1], times[1:]):
        velocity = lambda y, u: model(y, u * torch.ones(len(y), device=y.device))  # noqa: E731
        if method == "heun":
            x = ref.heun_step(velocity, x, s.item(), s_next.item())
        else:
            x = x - (s - s_next).item() * velocity(x, s.item())
    return x


@mistake("flow_sample", says="made on the CPU: pass device=")
@torch.no_grad()
def flow_sample_float32_times_on_cpu(model, n_samples, steps, method="euler", x_1=None):
    x = torch.randn(n_samples, *model.image_shape) if x_1 is None else x_1
    times = torch.linspace(1, 0, steps + 1)
    for s, s_next in zip(times[:-1], times[1:]):
        velocity = lambda y, u: model(y, u * torch.ones(len(y)))  # noqa: E731
        if method == "heun":
            x = ref.heun_step(velocity, x, s.item(), s_next.item())
        else:
            x = x - (s - s_next).item() * velocity(x, s.item())
    return x


class _Scale(torch.nn.Module):
    def forward(self, s):
        return s * 1000


@correct("FlowUnet")
class FlowUnetScaledEmbedding(part2.Unet):
    """Correct: the scale put in front of the time MLP once, in __init__."""

    needs_schedule = False

    def __init__(self, config, noise_schedule=None):
        super().__init__(config, noise_schedule)
        self.time_mlp = torch.nn.Sequential(_Scale(), *self.time_mlp)


@mistake("heun_step", says="changed its argument `x`")
def heun_step_in_place(drift, x, s, s_next):
    d = drift(x, s)
    x_euler = x.clone().add_((s_next - s) * d)
    if s_next == 0:
        return x_euler
    return x.add_((s_next - s) * (d + drift(x_euler, s_next)) / 2)


@mistake("flow_interpolate", says="changed its argument `x_0`")
def flow_interpolate_in_place(x_0, eps, s):
    velocity = eps - x_0
    return x_0.mul_(1 - per_image(s, x_0)).add_(per_image(s, x_0) * eps), velocity


@mistake("flow_interpolate", says="changed its argument `eps`")
def flow_interpolate_in_place_eps(x_0, eps, s):
    velocity = eps - x_0
    return eps.mul_(per_image(s, x_0)).add_((1 - per_image(s, x_0)) * x_0), velocity


@mistake("flow_sample", says="should be torch.float32")
@torch.no_grad()
def flow_sample_returns_float64(model, n_samples, steps, method="euler", x_1=None):
    x = torch.randn(n_samples, *model.image_shape, device=model.device) if x_1 is None else x_1
    return _flow_loop(model, x, torch.linspace(1, 0, steps + 1).tolist(), method).double()
