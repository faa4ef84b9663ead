"""Proof that Part 5's graders grade: each passes on the reference and on other correct implementations, fails on
the common mistakes with a message that names them, and reports untouched stubs as "not implemented yet"."""

import graders.part5 as g
import solutions.part5 as ref
from tests import variants_part5 as v
from tests.proofs import proofs

CORRECT = [
    (g.check_pf_ode_drift, ref.pf_ode_drift),
    (g.check_karras_sigmas, ref.karras_sigmas),
    (g.check_heun_step, ref.heun_step),
    (g.check_flow_interpolate, ref.flow_interpolate),
    (g.check_flow_matching_loss, ref.flow_matching_loss),
    (g.check_flow_sample, ref.flow_sample),
    (g.check_flow_unet, ref.FlowUnet),
    (g.check_pf_ode_drift, v.pf_ode_drift_eps),
    (g.check_pf_ode_drift, v.pf_ode_drift_alpha_bar),
    (g.check_karras_sigmas, v.karras_sigmas_loop),
    (g.check_karras_sigmas, v.karras_sigmas_numpy),
    (g.check_heun_step, v.heun_step_trapezoid),
    (g.check_flow_interpolate, v.flow_interpolate_lerp),
    (g.check_flow_interpolate, v.flow_interpolate_einsum),
    (g.check_flow_matching_loss, v.flow_matching_loss_by_hand),
    (g.check_flow_matching_loss, v.flow_matching_loss_numpy_rng),
    (g.check_flow_sample, v.flow_sample_loop_index),
    (g.check_flow_unet, v.FlowUnetTimesT),
    (g.check_heun_step, v.heun_step_rk2),
    (g.check_flow_sample, v.flow_sample_float32_times),
    (g.check_flow_unet, v.FlowUnetScaledEmbedding),
]

# (grader, mistaken implementation, a regular expression the failure message must match)
MISTAKES = [
    (g.check_pf_ode_drift, v.pf_ode_drift_no_one_over_sigma, "1/sigma factor"),
    (g.check_pf_ode_drift, v.pf_ode_drift_sign, "sign"),
    (g.check_pf_ode_drift, v.pf_ode_drift_feeds_z, "not z"),
    (g.check_pf_ode_drift, v.pf_ode_drift_sigma_as_t, "not sigma itself"),
    (g.check_pf_ode_drift, v.pf_ode_drift_rounded_t, "not rounded"),
    (g.check_karras_sigmas, v.karras_sigmas_no_rho, "exponent rho is missing"),
    (g.check_karras_sigmas, v.karras_sigmas_no_zero, "sigma_n = 0"),
    (g.check_karras_sigmas, v.karras_sigmas_rising, "rise"),
    (g.check_karras_sigmas, v.karras_sigmas_over_n, "i / \\(n - 1\\)"),
    (g.check_heun_step, v.heun_step_euler_only, "only Euler"),
    (g.check_heun_step, v.heun_step_no_last_euler, "must stay Euler"),
    (g.check_heun_step, v.heun_step_slope_at_x, "Euler's point"),
    (g.check_heun_step, v.heun_step_slope_at_s, "time s, not s_next"),
    (g.check_heun_step, v.heun_step_second_slope_only, "replaces both"),
    (g.check_flow_interpolate, v.flow_interpolate_reversed, "wrong way"),
    (g.check_flow_interpolate, v.flow_interpolate_vp, "straight"),
    (g.check_flow_interpolate, v.flow_interpolate_velocity_sign, "sign"),
    (g.check_flow_interpolate, v.flow_interpolate_eps_target, "DDPM's target"),
    (g.check_flow_interpolate, v.flow_interpolate_x0_target, "not x_0"),
    (g.check_flow_interpolate, v.flow_interpolate_scaled_velocity, "does not depend on s"),
    (g.check_flow_matching_loss, v.flow_matching_loss_randn_s, "Uniform\\[0, 1\\]"),
    (g.check_flow_matching_loss, v.flow_matching_loss_one_s, "one s for the whole batch"),
    (g.check_flow_matching_loss, v.flow_matching_loss_logit_normal, "logit-normal"),
    (g.check_flow_matching_loss, v.flow_matching_loss_scaled_s, "scales it itself"),
    (g.check_flow_matching_loss, v.flow_matching_loss_eps_target, "DDPM's target"),
    (g.check_flow_matching_loss, v.flow_matching_loss_velocity_sign, "sign"),
    (g.check_flow_matching_loss, v.flow_matching_loss_reversed, "s = 0 is the image"),
    (g.check_flow_matching_loss, v.flow_matching_loss_uniform_noise, "torch.rand"),
    (g.check_flow_matching_loss, v.flow_matching_loss_summed, "summed"),
    (g.check_flow_sample, v.flow_sample_forward_time, "s = 1"),
    (g.check_flow_sample, v.flow_sample_step_sign, "sign"),
    (g.check_flow_sample, v.flow_sample_always_euler, "Euler's step where Heun's"),
    (g.check_flow_sample, v.flow_sample_extra_step, "calls"),
    (g.check_flow_unet, v.FlowUnetUnscaled, "unscaled"),
    (g.check_flow_unet, v.FlowUnetRounded, "rounded"),
    (g.check_flow_unet, v.FlowUnetWithSchedule, "without a noise schedule"),
]

globals().update(proofs(5, CORRECT, MISTAKES))
