"""Proof that Part 1's graders grade: each passes on the reference and on other correct implementations, fails on
the common mistakes with a message that names them, and reports untouched stubs as "not implemented yet"."""

import pytest
import torch

import graders.part1 as grader
import solutions.part1 as ref
from graders.core import GraderFailure
from tests import variants_part1 as v
from tests.proofs import proofs

CORRECT = [
    (grader.check_linear_schedule, ref.linear_schedule),
    (grader.check_linear_schedule, v.linear_schedule_arange),
    (grader.check_q_eq2, ref.q_eq2),
    (grader.check_q_eq2, v.q_eq2_normal),
    (grader.check_q_eq2, v.q_eq2_numpy_rng),
    (grader.check_q_eq4, ref.q_eq4),
    (grader.check_q_eq4, v.q_eq4_cumprod_index),
    (grader.check_q_eq4, v.q_eq4_log_space),
    (grader.check_q_eq4, ref.q_eq2),  # eq. 2 in a loop has exactly eq. 4's distribution
    (grader.check_noise_schedule, ref.NoiseSchedule),
    (grader.check_noise_schedule, v.NoiseScheduleLoops),
    (grader.check_noise_schedule, v.NoiseScheduleLogSpace),
    (grader.check_noise_schedule, v.NoiseScheduleNumpy),
    (grader.check_noise_img, ref.noise_img),
    (grader.check_noise_img, v.noise_img_normal),
    (grader.check_reconstruct, ref.reconstruct),
    (grader.check_reconstruct, v.reconstruct_rsqrt),
    (grader.check_tiny_diffuser, ref.TinyDiffuser),
    (grader.check_tiny_diffuser, v.TinyDiffuserOwnNames),
    (grader.check_diffusion_loss, ref.diffusion_loss),
    (grader.check_diffusion_loss, v.diffusion_loss_by_hand),
    (grader.check_diffusion_loss, v.diffusion_loss_einsum),
    (grader.check_train, ref.train),
    (grader.check_train, v.train_plain),
    (grader.check_sample, ref.sample),
    (grader.check_sample, v.sample_loop_list),
]

# (grader, mistaken implementation, a regular expression the failure message must match)
MISTAKES = [
    (grader.check_linear_schedule, v.linear_schedule_reversed, "reversed"),
    (grader.check_linear_schedule, v.linear_schedule_extra_point, "T \\+ 1 points"),
    (grader.check_linear_schedule, v.linear_schedule_float64, "float32"),
    (grader.check_linear_schedule, v.linear_schedule_fixed_ends, "min_noise and max_noise are ignored"),
    (grader.check_q_eq2, v.q_eq2_beta_as_std, "beta used as a standard deviation"),
    (grader.check_q_eq2, v.q_eq2_off_by_one, "off by one"),
    (grader.check_q_eq2, v.q_eq2_uniform, "torch.rand"),
    (grader.check_q_eq2, v.q_eq2_same_noise, "one noise tensor reused"),
    (grader.check_q_eq2, v.q_eq2_in_place, "in place"),
    (grader.check_q_eq4, v.q_eq4_off_by_one, "off by one"),
    (grader.check_q_eq4, v.q_eq4_wraps_at_zero, "wraps around"),
    (grader.check_q_eq4, v.q_eq4_no_sqrt, "variance and standard deviation mixed up"),
    (grader.check_q_eq4, v.q_eq4_last_alpha_only, "sqrt\\(alpha_n\\) of the last step"),
    (grader.check_q_eq4, v.q_eq4_uniform, "uniform|torch.rand"),
    (grader.check_q_eq4, v.q_eq4_seeded, "same output twice"),
    (grader.check_q_eq4, v.q_eq4_float64, "should be torch.float32, as the docstring says"),
    (grader.check_noise_schedule, v.NoiseSchedulePlainAttributes, "plain attribute"),
    (grader.check_noise_schedule, v.NoiseScheduleShifted, "off by one: alpha_bars starts at 1"),
    (grader.check_noise_schedule, v.NoiseScheduleIndexT, "index t - 1"),
    (grader.check_noise_schedule, v.NoiseScheduleCumsum, "cumulative sum"),
    (grader.check_noise_schedule, v.NoiseScheduleOnCpu, "tables are made on the CPU"),
    (grader.check_noise_schedule, v.NoiseScheduleNumpyOnCpu, "(?s)alpha_bars on cpu.*tables are made on the CPU"),
    (grader.check_noise_schedule, v.NoiseScheduleIgnoresBetas, "betas passed in are ignored"),
    (grader.check_noise_schedule, v.NoiseScheduleFloat32Always, "float64 tables"),
    (grader.check_noise_schedule, v.NoiseScheduleReversed, "reversed"),
    (grader.check_noise_img, v.noise_img_excludes_T, "never reached T"),
    (grader.check_noise_img, v.noise_img_from_zero, "never be 0"),
    (grader.check_noise_img, v.noise_img_index_t, "off by one"),
    (grader.check_noise_img, v.noise_img_uniform, "uniform noise"),
    (grader.check_noise_img, v.noise_img_scaled_noise, "unscaled noise"),
    (grader.check_noise_img, v.noise_img_alpha_not_alpha_bar, "alpha_t used where eq. 4 needs alpha_bar_t"),
    (grader.check_noise_img, v.noise_img_float_t, "integers"),
    (grader.check_noise_img, v.noise_img_ignores_max_steps, "max_steps=3"),
    (grader.check_noise_img, v.noise_img_float64_noise, "noise, for float32 images should be torch.float32"),
    (grader.check_reconstruct, v.reconstruct_no_division, "division by sqrt\\(alpha_bar_t\\) is missing"),
    (grader.check_reconstruct, v.reconstruct_plus, "added instead of subtracted"),
    (grader.check_tiny_diffuser, v.TinyDiffuserReturnsX0, "guess of x_0 is returned as it is"),
    (grader.check_tiny_diffuser, v.TinyDiffuserAlphaNotAlphaBar, "alpha_t where eq. 4 needs alpha_bar_t"),
    (grader.check_tiny_diffuser, v.TinyDiffuserNoSqrt, "square roots are missing"),
    (grader.check_tiny_diffuser, v.TinyDiffuserRawT, "appended unscaled"),
    (grader.check_tiny_diffuser, v.TinyDiffuserFixedT, "fixed number, not by this schedule's T"),
    (grader.check_tiny_diffuser, v.TinyDiffuserFloat64, "float32 images should be torch.float32"),
    (
        grader.check_tiny_diffuser,
        v.TinyDiffuserDefaultSizes,
        "n_hidden_layers, config.hidden_size or config.image_shape is ignored",
    ),
    (grader.check_tiny_diffuser, v.TinyDiffuserNoT, "forgot to append t"),
    (grader.check_tiny_diffuser, v.TinyDiffuserNotADiffusionModel, "subclass DiffusionModel"),
    (grader.check_diffusion_loss, v.diffusion_loss_against_image, "compared with the image x_0"),
    (grader.check_diffusion_loss, v.diffusion_loss_against_noised, "compared with x_t"),
    (grader.check_diffusion_loss, v.diffusion_loss_sum, "a sum, not a mean"),
    (grader.check_diffusion_loss, v.diffusion_loss_item, "not loss.item\\(\\)"),
    (grader.check_diffusion_loss, v.diffusion_loss_detached, "carries no gradient"),
    (grader.check_diffusion_loss, v.diffusion_loss_abs, "squares are missing"),
    (grader.check_diffusion_loss, v.diffusion_loss_new_schedule, "not N\\(0, I\\) under the model's schedule"),
    (grader.check_diffusion_loss, v.diffusion_loss_clean_input, "given the clean images"),
    (grader.check_diffusion_loss, v.diffusion_loss_one_t, "(?s)same t.*one t drawn for the whole batch"),
    (
        grader.check_diffusion_loss,
        v.diffusion_loss_after_wrong_noise_img,
        "(?s)t runs from 1 to T.*first: your `noise_img`, which this step calls, fails its own check",
    ),
    (
        grader.check_diffusion_loss,
        v.diffusion_loss_after_unscaled_noise_img,
        "(?s)does not match.*first: your `noise_img`, which this step calls, fails its own check",
    ),
    (
        grader.check_noise_img,
        v.noise_img_from_zero_lookup,
        "(?s)variants_part1.py:\\d+, in noise_img_from_zero_lookup.*raised inside given code: solutions/part1.py"
        ".*t runs from 1 to T",
    ),
    (grader.check_train, v.train_new_schedule, "replaced the model's noise schedule"),
    (grader.check_train, v.train_no_step, "did not change the model's weights"),
    (grader.check_train, v.train_no_eval_log, "eval_loss"),
    (grader.check_train, v.train_no_loss_log, "logged no loss"),
    (grader.check_train, v.train_default_lr, "ignores config.lr"),
    (grader.check_train, v.train_default_batch_size, "config.batch_size = 64"),
    (grader.check_train, v.train_default_epochs, "config.epochs = 30"),
    (grader.check_sample, v.sample_noise_at_t1, "noise is added at t = 1"),
    (grader.check_sample, v.sample_sigma_beta, "sqrt\\(beta_t\\)"),
    (grader.check_sample, v.sample_no_division, "division by sqrt\\(alpha_t\\) is missing"),
    (grader.check_sample, v.sample_no_noise, "no noise is added"),
    (grader.check_sample, v.sample_alpha_bar_previous, "alpha_bar is looked up one step early"),
    (grader.check_sample, v.sample_sigma_beta, "sigma_t is beta_t"),
    (grader.check_sample, v.sample_t_off_by_one, "off by one"),
    (grader.check_sample, v.sample_new_schedule, "model.noise_schedule"),
    (grader.check_sample, v.sample_reversed_sequence, "backwards"),
    (grader.check_sample, v.sample_returns_list, "one tensor"),
    (grader.check_sample, v.sample_with_grad, "without gradients"),
    (grader.check_sample, v.sample_uniform_start, "uniform distribution"),
    (grader.check_sample, v.sample_one_t, "one t per sample"),
]


globals().update(proofs(1, CORRECT, MISTAKES))


def test_crash_in_student_code_says_where():
    def broken(max_steps, min_noise=1e-4, max_noise=0.02):
        return torch.linspace(min_noise, max_noise) * max_steps  # linspace needs its number of points

    with pytest.raises(
        GraderFailure, match=r"(?s)your code raised TypeError.*\n  at .*test_graders_part1.py:\d+, in broken"
    ):
        grader.check_linear_schedule(broken)


def test_reference_pieces_share_one_time_step_convention():
    """q_eq4(x, n) noises like n steps of q_eq2; NoiseSchedule.alpha_bar(n) is q_eq4's alpha_bar_n; noise_img can
    draw t = T and sample starts its loop at T: the historical off-by-one between these pieces stays gone."""
    torch.manual_seed(0)
    schedule = ref.NoiseSchedule(ref.linear_schedule(8))
    x = torch.ones(200_000)
    for n in (1, 4, 8):
        eq2, eq4 = ref.q_eq2(x, n, schedule.betas), ref.q_eq4(x, n, schedule.betas)
        assert abs(eq2.mean() - eq4.mean()) < 0.01 and abs(eq2.var() - eq4.var()) < 0.01
        assert torch.isclose(eq4.mean(), schedule.alpha_bar(n).sqrt(), atol=0.01)
    t, _, _ = ref.noise_img(torch.zeros(2000, 1, 1, 1), schedule)
    assert int(t.min()) == 1 and int(t.max()) == 8


def test_notebook_can_be_graded_from_its_definitions():
    """--impl NOTEBOOK runs only the imports, defs and classes of the notebook: here, the solved one."""
    from graders.core import REPO_ROOT, load_impl

    module = load_impl(str(REPO_ROOT / "solutions" / "part1_gradients.ipynb"), 1)
    grader.check_reconstruct(module.reconstruct)
    grader.check_noise_schedule(module.NoiseSchedule)


def test_sample_on_a_model_without_parameters_names_the_device_source():
    """A sample that finds its device with next(model.parameters()) breaks on the grader's parameter-free model:
    the failure says where the device comes from instead of a bare StopIteration."""

    def sample_device_from_parameters(model, n_samples, return_all_steps=False):
        device = next(model.parameters()).device
        return ref.sample(model, n_samples, return_all_steps).to(device)

    with pytest.raises(GraderFailure, match=r"model.noise_schedule.betas.device"):
        grader.check_sample(sample_device_from_parameters)
