"""Proof that Part 1's graders grade: each passes on the reference and on other correct implementations, fails on
the common mistakes with a message that names them, and reports untouched stubs as "not implemented yet"."""

import pytest
import torch

import graders.part1 as grader
import solutions.part1 as ref
from graders.core import GraderFailure
from tests.proofs import proofs

globals().update(proofs(1))


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
