"""The given machinery of Part 5: a flow model trains with the given loop, saves and loads without a noise schedule,
and the ODE pieces fit the DDPM model of Part 3."""

import shutil

import pytest
import torch

from graders import REPO_ROOT
from solutions.part1 import NoiseSchedule, linear_schedule
from solutions.part2 import UnetConfig
from solutions.part4 import ddim_step
from solutions.part5 import (
    FlowUnet,
    ToyMLP,
    ToyMLPConfig,
    flow_matching_loss,
    flow_sample,
    pf_ode_drift,
    sigma_to_t,
    sigmas_of,
)
from utils.datasets.toy import two_moons
from utils.engine.checkpoints import load_checkpoint, save_checkpoint
from utils.engine.training import FitConfig, TrainConfig, fit

pytestmark = pytest.mark.usefixtures("one_thread")
TINY = UnetConfig(image_shape=(1, 8, 8), channels=8, dim_mults=(1, 2), attention_levels=())


def test_fit_trains_a_flow_model_and_its_checkpoint_round_trips(tmp_path):
    model = FlowUnet(TINY)
    before = [p.detach().clone() for p in model.parameters()]
    fit(model, flow_matching_loss, torch.rand(16, 1, 8, 8) * 2 - 1, TrainConfig(epochs=1, batch_size=8, device="cpu"),
        FitConfig(progress=False))  # fmt: skip
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
    save_checkpoint(tmp_path / "flow.pt", model)
    loaded = load_checkpoint(tmp_path / "flow.pt", "cpu", FlowUnet).model
    assert isinstance(loaded, FlowUnet) and loaded.noise_schedule is None and loaded.device.type == "cpu"
    x_1 = torch.randn(2, 1, 8, 8)
    torch.testing.assert_close(flow_sample(loaded, 2, 3, x_1=x_1), flow_sample(model.eval(), 2, 3, x_1=x_1))


def test_sigma_to_t_inverts_the_schedule_and_refuses_levels_outside_it():
    schedule = NoiseSchedule(linear_schedule(50))
    sigmas = sigmas_of(schedule)
    assert [sigma_to_t(schedule, float(sigmas[t - 1])) for t in (1, 7, 50)] == pytest.approx([1, 7, 50], abs=1e-6)
    between = sigma_to_t(schedule, float((sigmas[9] * sigmas[10]).sqrt()))
    assert 10 < between < 11
    with pytest.raises(ValueError, match="outside the model's range"):
        sigma_to_t(schedule, float(sigmas[-1]) * 2)


def test_one_euler_step_of_the_ode_is_one_ddim_step_at_eta_0():
    schedule = NoiseSchedule(linear_schedule(100, 1e-3, 0.2))
    model = ToyMLP(ToyMLPConfig(), schedule).eval()
    sigmas = sigmas_of(schedule)
    x_t = torch.randn(5, 2, 1, 1)
    t, t_prev = 80, 30
    with torch.no_grad():
        z = x_t * (1 + sigmas[t - 1] ** 2).sqrt()
        z = z + (sigmas[t_prev - 1] - sigmas[t - 1]) * pf_ode_drift(model, z, float(sigmas[t - 1]))
        ddim = ddim_step(x_t, model(x_t, torch.full((5,), t)), t, t_prev, schedule, eta=0.0)
    torch.testing.assert_close((z / (1 + sigmas[t_prev - 1] ** 2).sqrt()).float(), ddim, atol=1e-5, rtol=1e-4)


def test_two_moons_are_centred_and_repeatable():
    points = two_moons(2000)
    assert points.shape == (2000, 2, 1, 1)
    assert points.abs().max() < 1.5 and points.mean(0).abs().max() < 0.05
    assert torch.equal(points, two_moons(2000))


def test_own_parts_run_the_part5_program(tmp_path, capsys):
    from ddpm_course.flow import main

    folder = tmp_path / "student"
    folder.mkdir()
    shutil.copy(REPO_ROOT / "tests" / "students" / "simple_part1.py", folder / "part1.py")
    for part in (2, 3, 4, 5):
        shutil.copy(REPO_ROOT / "solutions" / f"part{part}.py", folder / f"part{part}.py")
    out = tmp_path / "run"
    argv = ["--impl", str(folder), "--quick", "--toy", "--train", "--ladder", "--device", "cpu", "--out", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert f"Part 1: {folder}/part1.py (yours)" in printed and f"Part 5: {folder}/part5.py (yours)" in printed
    assert "length over the distance between their ends" in printed and "trained the flow U-Net" in printed
    assert printed.count("model calls: FMNIST-FID") == 4 and "(floor " in printed and "flow Heun" in printed
    assert {"paths.png", "flow.pt", "metrics.json", "tables.md"} <= {p.name for p in out.iterdir()}
    # like with like: every sampler clipped, and the rungs of equal calls compared by their paired difference
    tables = (out / "tables.md").read_text(encoding="utf-8")
    assert "Every sampler sees its model's predicted clean image clipped to [-1, 1]." in tables
    assert "| DDIM 4 | flow Euler 4 | " in tables and "| Heun (EDM) 3 | flow Heun 3 | " in tables
    assert len(list((out / "samples").glob("*.pt"))) == 4


def test_a_ladder_pairs_its_rungs_with_an_earlier_runs_from_the_same_noise(tmp_path, capsys):
    """--samplers picks rungs; --pair-with sets each against the same rung of an earlier run: a run against itself
    differs by exactly 0, and clipping against not is a paired difference with its interval."""
    from ddpm_course.flow import main

    common = ["--quick", "--ladder", "--samplers", "DDIM, flow Euler", "--device", "cpu"]
    assert main([*common, "--out", str(tmp_path / "clipped")]) == 0
    assert main([*common, "--pair-with", str(tmp_path / "clipped"), "--out", str(tmp_path / "again")]) == 0
    printed = capsys.readouterr().out
    assert printed.count("model calls: FMNIST-FID") == 4 and "Heun" not in printed
    assert "FMNIST-FID(DDIM 4, A) - FMNIST-FID(DDIM 4, B) = +0.0 [+0.0, +0.0]" in printed
    tables = (tmp_path / "again" / "tables.md").read_text(encoding="utf-8")
    assert f"this run (A) against {tmp_path / 'clipped'} (B), rung by rung" in tables
    assert "| flow Euler 4, A | flow Euler 4, B | +0.0 | [+0.0, +0.0] |" in tables
    argv = [*common, "--no-clip", "--samplers", "DDIM", "--pair-with", str(tmp_path / "clipped")]
    assert main([*argv, "--out", str(tmp_path / "unclipped")]) == 0
    assert "FMNIST-FID(DDIM 4, A) - FMNIST-FID(DDIM 4, B) = " in capsys.readouterr().out
    for wrong, said in (("--samplers", "Euler"), ("--pair-with", str(tmp_path))):
        with pytest.raises(SystemExit):
            main(["--ladder", wrong, said, "--out", str(tmp_path / "no")])
    err = capsys.readouterr().err
    assert "no sampler named Euler" in err and "has no samples/ folder" in err


def test_the_shipped_flow_checkpoint_loads_and_its_command_says_what_made_it():
    from ddpm_course.flow import SHIPPED_CHECKPOINT, SHIPPED_COMMAND

    assert (
        SHIPPED_CHECKPOINT.stat().st_size < 3e6
        and f"--export {SHIPPED_CHECKPOINT.relative_to(REPO_ROOT)}" in SHIPPED_COMMAND
    )
    loaded = load_checkpoint(SHIPPED_CHECKPOINT, "cpu", FlowUnet)
    assert isinstance(loaded.model, FlowUnet) and loaded.model.noise_schedule is None
    assert f"--epochs {loaded.train_config.epochs} " in SHIPPED_COMMAND
    x_1 = torch.randn(2, *loaded.model.image_shape)
    assert flow_sample(loaded.model, 2, 2, x_1=x_1).isfinite().all()


def test_clipping_at_the_odes_fractional_steps_clips_exactly_the_denoised_image_the_drift_sees():
    """Part 5's ladder treats every sampler as Part 4's does: x0_hat clipped. At the fractional step of a noise level,
    ClippedPrediction must read alpha_bar off the same interpolation `sigma_to_t` used, so that the drift's denoised
    image D(z; sigma) = z - sigma eps is the clipped one."""
    from utils.engine.sampling import ClippedPrediction, fractional_alpha_bar

    schedule = NoiseSchedule(linear_schedule(1000))
    ts = torch.tensor([sigma_to_t(schedule, sigma) for sigma in (0.02, 0.5, 3.0, 77.0)], dtype=torch.float64)
    sigmas = (1 / fractional_alpha_bar(schedule, ts) - 1).sqrt()
    torch.testing.assert_close(sigmas, torch.tensor([0.02, 0.5, 3.0, 77.0], dtype=torch.float64), rtol=1e-6, atol=0)
    torch.testing.assert_close(fractional_alpha_bar(schedule, torch.tensor([1.0, 500.0, 1000.0])),
                               schedule.alpha_bars[[0, 499, 999]].double(), rtol=1e-6, atol=0)  # fmt: skip
    with pytest.raises(ValueError, match="from 1 to T = 1000"):
        fractional_alpha_bar(schedule, torch.tensor([0.5]))

    class Wild(ToyMLP):  # a "model" whose x0_hat lands far outside [-1, 1]
        def forward(self, images, num_steps):
            return -5 * images

    model = Wild(ToyMLPConfig(), schedule)
    z = torch.randn(64, 2, 1, 1, generator=torch.Generator().manual_seed(0)) * 4
    for sigma in (0.02, 0.5, 3.0):
        drift = pf_ode_drift(ClippedPrediction(model), z, sigma)
        denoised = z - sigma * drift
        raw = z - sigma * pf_ode_drift(model, z, sigma)
        assert raw.abs().max() > 1.5  # the test bites: unclipped, the denoised image leaves [-1, 1]
        torch.testing.assert_close(denoised, raw.clamp(-1, 1), rtol=1e-4, atol=1e-4)


def test_a_clipped_flow_model_points_to_the_clipped_clean_image():
    from utils.engine.sampling import ClippedVelocity

    class Wild(ToyMLP):
        def forward(self, images, s):
            return -3 * images

    flow = Wild(ToyMLPConfig())
    x_s = torch.randn(64, 2, 1, 1, generator=torch.Generator().manual_seed(1)) * 2
    for value in (1.0, 0.6, 0.05):
        s = torch.full((64,), value)
        v = ClippedVelocity(flow)(x_s, s)
        raw = x_s - value * flow(x_s, s)
        assert raw.abs().max() > 1.5
        torch.testing.assert_close(x_s - value * v, raw.clamp(-1, 1))
    x_1 = torch.randn(8, 2, 1, 1)
    assert (
        ClippedVelocity(flow).device == flow.device
        and flow_sample(ClippedVelocity(flow), 8, 3, x_1=x_1).shape == x_1.shape
    )


def test_the_ladder_compares_every_two_samplers_at_equal_calls_and_full_ddpm_with_the_longest_rungs():
    from ddpm_course.flow import ladder_settings
    from ddpm_course.guidance import ladder_pairs

    rungs = ladder_settings(quick=False, full_ddpm=1000)
    pairs = ladder_pairs([calls for _, calls in rungs])
    assert len(pairs) == 6 * 4 + 4
    assert all(rungs[i][1] == rungs[j][1] for i, j in pairs[:24])
    assert all(rungs[j] == ("DDPM", 1000) and rungs[i][1] == 49 for i, j in pairs[24:])
    # Part 4's ladder: DDIM at eta 0 and 1 and respaced DDPM, by steps, then DDPM in all T steps
    from ddpm_course.guidance import ladder_settings as part4_settings

    calls = [steps or 1000 for _, steps, _ in part4_settings(steps=(10, 20, 50, 100))]
    assert ladder_pairs(calls) == [
        (0, 4),
        (1, 5),
        (2, 6),
        (2, 8),
        (3, 7),
        (3, 9),
        (6, 8),
        (7, 9),
        (3, 10),
        (7, 10),
        (9, 10),
    ]
