"""Proof that Part 1's graders grade: each passes on the reference and on other correct implementations, fails on
the common mistakes with a message that names them, and reports untouched stubs as "not implemented yet"."""

import pytest
import torch

import exercises.part1 as stubs
import graders.part1 as grader
import solutions.part1 as ref
from graders.core import GraderFailure, NotImplementedYet
from tests import variants_part1 as v

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
    (grader.check_noise_img, ref.noise_img),
    (grader.check_noise_img, v.noise_img_normal),
    (grader.check_reconstruct, ref.reconstruct),
    (grader.check_reconstruct, v.reconstruct_rsqrt),
    (grader.check_tiny_diffuser, ref.TinyDiffuser),
    (grader.check_tiny_diffuser, v.TinyDiffuserOwnNames),
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
    (grader.check_noise_schedule, v.NoiseSchedulePlainAttributes, "plain attribute"),
    (grader.check_noise_schedule, v.NoiseScheduleShifted, "off by one: alpha_bars starts at 1"),
    (grader.check_noise_schedule, v.NoiseScheduleIndexT, "index t - 1"),
    (grader.check_noise_schedule, v.NoiseScheduleCumsum, "cumulative sum"),
    (grader.check_noise_schedule, v.NoiseScheduleIgnoresDevice, "device argument is ignored"),
    (grader.check_noise_schedule, v.NoiseScheduleReversed, "reversed"),
    (grader.check_noise_img, v.noise_img_excludes_T, "never reached T"),
    (grader.check_noise_img, v.noise_img_from_zero, "never be 0"),
    (grader.check_noise_img, v.noise_img_index_t, "off by one"),
    (grader.check_noise_img, v.noise_img_uniform, "uniform noise"),
    (grader.check_noise_img, v.noise_img_scaled_noise, "unscaled noise"),
    (grader.check_noise_img, v.noise_img_alpha_not_alpha_bar, "alpha_t used where eq. 4 needs alpha_bar_t"),
    (grader.check_noise_img, v.noise_img_float_t, "integers"),
    (grader.check_noise_img, v.noise_img_ignores_max_steps, "max_steps=3"),
    (grader.check_reconstruct, v.reconstruct_no_division, "division by sqrt\\(alpha_bar_t\\) is missing"),
    (grader.check_reconstruct, v.reconstruct_plus, "added instead of subtracted"),
    (grader.check_tiny_diffuser, v.TinyDiffuserRawT, "appended unscaled"),
    (grader.check_tiny_diffuser, v.TinyDiffuserTFirst, "before the pixels"),
    (grader.check_tiny_diffuser, v.TinyDiffuserNoT, "forgot to append t"),
    (grader.check_tiny_diffuser, v.TinyDiffuserNoReLU, "does not match the reference"),
    (grader.check_tiny_diffuser, v.TinyDiffuserNotADiffusionModel, "subclass DiffusionModel"),
    (grader.check_train, v.train_against_image, "not with the image"),
    (grader.check_train, v.train_against_noised, "not with the image"),
    (grader.check_train, v.train_no_step, "did not change the model's weights"),
    (grader.check_train, v.train_no_nan_check, "NaN or inf"),
    (grader.check_train, v.train_no_schedule, "attach its NoiseSchedule"),
    (grader.check_train, v.train_no_eval_log, "eval_loss"),
    (grader.check_sample, v.sample_noise_at_t1, "noise is added at t = 1"),
    (grader.check_sample, v.sample_sigma_beta, "sqrt\\(beta_t\\)"),
    (grader.check_sample, v.sample_no_division, "division by sqrt\\(alpha_t\\) is missing"),
    (grader.check_sample, v.sample_t_off_by_one, "off by one"),
    (grader.check_sample, v.sample_new_schedule, "model.noise_schedule"),
    (grader.check_sample, v.sample_reversed_sequence, "backwards"),
    (grader.check_sample, v.sample_returns_list, "one tensor"),
    (grader.check_sample, v.sample_with_grad, "without gradients"),
    (grader.check_sample, v.sample_uniform_start, "uniform distribution"),
    (grader.check_sample, v.sample_one_t, "one t per sample"),
]


def _id(case) -> str:
    return f"{case[0].step}-{getattr(case[1], '__name__', case[1])}"


@pytest.mark.parametrize("check, implementation", CORRECT, ids=[_id(c) for c in CORRECT])
def test_grader_accepts_correct_implementation(check, implementation):
    check(implementation)


@pytest.mark.parametrize("check, implementation, message", MISTAKES, ids=[_id(c) for c in MISTAKES])
def test_grader_names_the_mistake(check, implementation, message):
    with pytest.raises(GraderFailure, match=message):
        check(implementation)


STEPS = {
    "linear_schedule": grader.check_linear_schedule,
    "q_eq2": grader.check_q_eq2,
    "q_eq4": grader.check_q_eq4,
    "NoiseSchedule": grader.check_noise_schedule,
    "noise_img": grader.check_noise_img,
    "reconstruct": grader.check_reconstruct,
    "TinyDiffuser": grader.check_tiny_diffuser,
    "train": grader.check_train,
    "sample": grader.check_sample,
}


@pytest.mark.parametrize("name", STEPS)
def test_untouched_stub_is_not_implemented_yet(name):
    with pytest.raises(NotImplementedYet, match="not implemented yet"):
        STEPS[name](getattr(stubs, name))


def test_every_step_has_a_grader_and_a_test():
    import tests.test_part1 as part1_tests

    from utils.authoring.build import snake_case

    tests = {n for n in dir(part1_tests) if n.startswith("test_")}
    assert tests == {f"test_{snake_case(name)}" for name in STEPS}
    assert all(check.__name__ == f"check_{snake_case(name)}" for name, check in STEPS.items())


def test_wrong_kind_of_argument_is_explained():
    with pytest.raises(GraderFailure, match="takes your function itself"):
        grader.check_linear_schedule(ref.linear_schedule(10))
    with pytest.raises(GraderFailure, match="takes your class itself"):
        grader.check_noise_schedule(ref.NoiseSchedule(10))


def test_crash_in_student_code_says_where():
    def broken(max_steps, min_noise=1e-4, max_noise=0.02):
        return torch.linspace(min_noise, max_noise) * max_steps  # linspace needs its number of points

    with pytest.raises(GraderFailure, match=r"(?s)your code raised TypeError.*\n  at .*test_graders_part1.py:\d+, in broken"):
        grader.check_linear_schedule(broken)


def test_reference_pieces_share_one_time_step_convention():
    """q_eq4(x, n) noises like n steps of q_eq2; NoiseSchedule.alpha_bar(n) is q_eq4's alpha_bar_n; noise_img can
    draw t = T and sample starts its loop at T: the historical off-by-one between these pieces stays gone."""
    torch.manual_seed(0)
    schedule = ref.NoiseSchedule(8)
    x = torch.ones(200_000)
    for n in (1, 4, 8):
        eq2, eq4 = ref.q_eq2(x, n, schedule.betas), ref.q_eq4(x, n, schedule.betas)
        assert abs(eq2.mean() - eq4.mean()) < 0.01 and abs(eq2.var() - eq4.var()) < 0.01
        assert torch.isclose(eq4.mean(), schedule.alpha_bar(n).sqrt(), atol=0.01)
    t, _, _ = ref.noise_img(torch.zeros(2000, 1, 1, 1), schedule)
    assert int(t.min()) == 1 and int(t.max()) == 8


def test_notebook_can_be_graded_from_its_definitions(tmp_path):
    """--impl NOTEBOOK runs only the imports, defs and classes of the notebook: here, the solved one."""
    from graders.core import REPO_ROOT, load_impl

    module = load_impl(str(REPO_ROOT / "solutions" / "part1_gradients.ipynb"), 1)
    grader.check_reconstruct(module.reconstruct)
    grader.check_noise_schedule(module.NoiseSchedule)


@pytest.mark.parametrize("name", STEPS)
def test_untouched_student_notebook_is_not_implemented_yet(name):
    from graders.core import REPO_ROOT, load_impl

    notebook = load_impl(str(REPO_ROOT / "part1_gradients.ipynb"), 1)
    with pytest.raises(NotImplementedYet, match="not implemented yet"):
        STEPS[name](getattr(notebook, name))
