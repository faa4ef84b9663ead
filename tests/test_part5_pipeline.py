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
