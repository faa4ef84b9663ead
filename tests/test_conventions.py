"""The table "How the course maps onto the libraries you will use next" (Part 4's notebook, section 8), row by row,
against diffusers on the same inputs. Skipped where diffusers is not installed (`pip install -e ".[bench]"`)."""

import numpy as np
import pytest
import torch

import solutions.part1 as part1
import solutions.part2 as part2
import solutions.part4 as part4
import solutions.part5 as part5
from utils.engine.sampling import spaced_steps

diffusers = pytest.importorskip("diffusers")
from diffusers.models.embeddings import get_timestep_embedding  # noqa: E402

T = 1000


@pytest.fixture(scope="module")
def schedule():
    return part1.NoiseSchedule(part1.linear_schedule(T))


def test_the_course_t_is_diffusers_t_plus_one(schedule):
    theirs = diffusers.DDPMScheduler(num_train_timesteps=T)
    assert torch.allclose(theirs.alphas_cumprod, schedule.alpha_bars)  # their index t holds the course's step t + 1


def test_sample_variance_is_fixed_large_and_the_default_is_the_posterior_variance(schedule):
    large = diffusers.DDPMScheduler(num_train_timesteps=T, variance_type="fixed_large")
    small = diffusers.DDPMScheduler(num_train_timesteps=T)
    assert small.config.variance_type == "fixed_small" and small.config.clip_sample
    steps = torch.tensor([2, 10, 500, 1000])  # the course's t; t = 1 has beta_tilde_1 = 0, which they clamp at 1e-20
    _, beta_tilde = part1.q_posterior(torch.zeros(4, 1, 1, 1), torch.zeros(4, 1, 1, 1), steps, schedule)
    for i, t in enumerate(steps.tolist()):
        # theirs recomputes beta_t as 1 - alpha_bar_t / alpha_bar_{t-1} in float32: equal to rounding
        assert float(large._get_variance(t - 1)) == pytest.approx(schedule.beta(t).item(), abs=1e-7)
        assert float(small._get_variance(t - 1)) == pytest.approx(beta_tilde[i].item(), abs=1e-7)


def test_ddim_grid_is_linspace_shifted_by_one_except_at_halves():
    theirs = diffusers.DDIMScheduler(num_train_timesteps=T, timestep_spacing="linspace")
    assert diffusers.DDIMScheduler().config.timestep_spacing == "leading"
    for n in (2, 10, 20, 50, 100, 1000):
        theirs.set_timesteps(n)
        assert np.array_equal(np.sort(theirs.timesteps.numpy()) + 1, spaced_steps(T, n).numpy()), n
    for n, differing in ((3, 1), (5, 1), (9, 1), (19, 9), (49, 3)):
        theirs.set_timesteps(n)
        gap = np.sort(theirs.timesteps.numpy()) + 1 - spaced_steps(T, n).numpy()
        assert np.count_nonzero(gap) == differing and np.abs(gap).max() == 1, n
    theirs.set_timesteps(1)
    assert theirs.timesteps.tolist() == [0] and spaced_steps(T, 1).tolist() == [T]


def test_diffusers_ddim_step_leaves_the_linspace_grid(schedule):
    theirs = diffusers.DDIMScheduler(
        num_train_timesteps=T, timestep_spacing="linspace", clip_sample=False, set_alpha_to_one=True
    )
    theirs.set_timesteps(10)
    t, t_next = theirs.timesteps[:2].tolist()
    assert (t, t_next) == (999, 888)
    x, eps = torch.randn(2, 1, 4, 4), torch.randn(2, 1, 4, 4)
    got = theirs.step(eps, t, x, eta=0.0).prev_sample
    assert torch.allclose(got, part4.ddim_step(x, eps, t + 1, t + 1 - T // 10, schedule, 0.0), atol=1e-5)
    assert not torch.allclose(got, part4.ddim_step(x, eps, t + 1, t_next + 1, schedule, 0.0), atol=1e-2)


def test_time_embedding_is_ddpm_s_not_unet2dmodel_s_default():
    t = torch.tensor([1, 5, 500, 1000])
    ours = part2.SinusoidalPositionEmbeddings(32)(t)
    assert torch.allclose(ours, get_timestep_embedding(t, 32, flip_sin_to_cos=False, downscale_freq_shift=1))
    assert not torch.allclose(ours, get_timestep_embedding(t, 32, flip_sin_to_cos=True, downscale_freq_shift=0))


def test_flow_convention_is_the_sd3_scheduler_s():
    theirs = diffusers.FlowMatchEulerDiscreteScheduler(num_train_timesteps=T)
    theirs.set_timesteps(10)
    x_0, eps, velocity = torch.randn(4, 1, 2, 2), torch.randn(4, 1, 2, 2), torch.randn(4, 1, 2, 2)
    s = theirs.sigmas[3].item()
    assert theirs.timesteps[3].item() == pytest.approx(part5.FLOW_TIME_SCALE * s, rel=1e-5)
    x_s, _ = part5.flow_interpolate(x_0, eps, torch.full((4,), s))
    assert torch.allclose(theirs.scale_noise(x_0, theirs.timesteps[3:4].repeat(4), eps), x_s)
    got = theirs.step(velocity, theirs.timesteps[0], x_s).prev_sample  # one Euler step from their first level
    assert torch.allclose(got, x_s + (theirs.sigmas[1] - theirs.sigmas[0]) * velocity)
    assert theirs.sigmas[-2].item() == pytest.approx(1 / T, rel=1e-3) and theirs.sigmas[-1].item() == 0
