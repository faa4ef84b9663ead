"""The given code students rely on: data checks, gradients, logging without prompts, and the reference run."""

import pytest
import torch

from solutions import part1 as ref
from utils import get_device
from utils.datasets.images import gradient_images
from utils.engine.model import denormalize_img, normalize_img, per_image
from utils.engine.training import RunLog, TrainConfig, WandbNotConfigured, check_images, minibatches


def tiny_model() -> ref.TinyDiffuser:
    return ref.TinyDiffuser(ref.TinyDiffuserConfig(), ref.NoiseSchedule(ref.linear_schedule(20)))


def test_gradients_are_images_in_unit_range_and_normalize_round_trips():
    images = gradient_images(16, (3, 8, 8), seed=0)
    assert images.shape == (16, 3, 8, 8) and images.min() >= 0 and images.max() <= 1
    assert torch.allclose(denormalize_img(normalize_img(images)), images, atol=1e-6)
    assert torch.equal(gradient_images(4, (3, 8, 8), seed=3), gradient_images(4, (3, 8, 8), seed=3))


def test_per_image_broadcasts_one_value_per_image_and_refuses_others():
    x = torch.ones(4, 3, 2, 2)
    assert (per_image(torch.arange(4.0), x) * x)[:, 0, 0, 0].tolist() == [0, 1, 2, 3]
    with pytest.raises(ValueError, match=r"one value per image, shape \(4,\)"):
        per_image(torch.ones(3), x)


@pytest.mark.parametrize(
    "bad, message",
    [
        ([1, 2, 3], "must be a tensor"),
        (torch.ones(10, 12), r"shape \(N, C, H, W\)"),
        (torch.ones(2, 3, 4, 4, dtype=torch.uint8), "forget normalize_img"),
        (torch.ones(0, 3, 4, 4), "empty"),
    ],
)
def test_bad_training_data_gets_a_clear_error(bad, message):
    with pytest.raises((TypeError, ValueError), match=message):
        check_images(bad)
    with pytest.raises((TypeError, ValueError), match=message):
        ref.train(tiny_model(), TrainConfig(), bad)


def test_minibatches_cover_the_set_once():
    images = torch.arange(10.0).reshape(10, 1, 1, 1)
    batches = list(minibatches(images, 4))
    assert [len(b) for b in batches] == [4, 4, 2]
    assert sorted(torch.cat(batches).flatten().tolist()) == list(range(10))


def test_a_model_without_a_schedule_says_how_to_give_it_one():
    with pytest.raises(ValueError, match=r"build it with one, e.g. TinyDiffuser\(config, NoiseSchedule"):
        ref.sample(ref.TinyDiffuser(ref.TinyDiffuserConfig()), 2)


def test_noise_schedule_takes_betas_and_refuses_anything_else():
    with pytest.raises(TypeError, match="takes the betas"):
        ref.NoiseSchedule(10)
    with pytest.raises(TypeError, match="takes the betas"):
        ref.NoiseSchedule(torch.ones(2, 3))


def test_noise_schedule_rejects_steps_outside_1_to_T():
    schedule = ref.NoiseSchedule(ref.linear_schedule(10))
    with pytest.raises(IndexError, match="from 1 to T = 10"):
        schedule.alpha_bar(0)
    with pytest.raises(IndexError, match="from 1 to T = 10"):
        schedule.beta(torch.tensor([3, 11]))
    with pytest.raises(TypeError, match="integers"):
        schedule.alpha(torch.tensor([1.5]))


def test_device_is_never_hard_coded():
    assert get_device("cpu") == torch.device("cpu")
    assert get_device().type in ("cpu", "cuda", "mps")


def test_run_log_keeps_history_without_wandb():
    log = RunLog(TrainConfig())
    log.log(1, loss=0.5)
    log.log(2, loss=0.25, eval_loss=0.3)
    log.log_images(2, original=torch.zeros(2, 1, 4, 4))
    assert log.history["loss"] == [(1, 0.5), (2, 0.25)] and log.last("eval_loss") == 0.3 and len(log.images) == 1


def test_online_wandb_without_an_account_fails_at_once_with_instructions(monkeypatch):
    import wandb

    monkeypatch.setattr(wandb, "login", lambda *args, **kwargs: False)
    monkeypatch.setattr(wandb, "init", lambda *args, **kwargs: pytest.fail("wandb.init must not be reached"))
    with pytest.raises(WandbNotConfigured, match="wandb login"):
        RunLog(TrainConfig(wandb_project="ddpm", wandb_mode="online"))
    with pytest.raises(ValueError, match="wandb_mode"):
        RunLog(TrainConfig(wandb_project="ddpm", wandb_mode="sometimes"))


def test_nan_loss_stops_training_with_a_clear_message():
    data = normalize_img(gradient_images(256, (3, 4, 5), seed=0))
    config = TrainConfig(epochs=1, lr=1e30, batch_size=64, device="cpu")
    with pytest.raises(FloatingPointError, match="at step \\d+: training diverged"):
        ref.train(tiny_model(), config, data)


def test_reference_part1_run_writes_its_figures_and_scores_its_samples(tmp_path, capsys):
    from ddpm_course.cli import main

    assert main(["reference", "part1", "--quick", "--out", str(tmp_path)]) == 0
    assert {p.name for p in tmp_path.iterdir()} >= {"samples.png", "loss.png", "denoising.png"}
    printed = capsys.readouterr().out
    # whose code, where it writes, and what its numbers and figures are
    assert printed.startswith("Part 1: solutions/part1.py (the reference)\n") and f"writing to {tmp_path}" in printed
    assert "held-out loss" in printed and "(training images above generated ones)" in printed
    assert "alpha_bar_T = 1.7e-05" in printed  # the schedule reaches noise
    assert "500 samples vs 200 real: gradient-fit residual" in printed and "color vs real: pixel_sd" in printed


def test_given_code_never_imports_the_exercises_the_reference_or_anything_above_it():
    """utils/ is the bottom layer: the exercises, the reference, the graders and the command import it, never the
    other way round. Whose algorithm a program runs is a parameter (an Implementation), not an import."""
    import ast
    from pathlib import Path

    above = {"solutions", "exercises", "graders", "tests", "ddpm_course"}
    root = Path(__file__).resolve().parent.parent / "utils"
    offenders = []
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            offenders += [f"{path.relative_to(root.parent)}: {n}" for n in names if n.split(".")[0] in above]
    assert not offenders, offenders


def test_running_a_part_on_untouched_stubs_names_the_missing_step(tmp_path, capsys):
    from ddpm_course.cli import main

    assert main(["run", "part1", "--quick", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("stopped: Part 1 (exercises/part1.py, line ") and err.count("\n") == 1
    assert "`linear_schedule` is still the untouched stub" in err


def test_gradient_fit_residual_is_zero_on_gradients_and_sees_noise_and_disagreeing_channels():
    from utils.datasets.images import gradient_fit_residual

    real = normalize_img(gradient_images(64, (3, 8, 8), seed=0))
    assert gradient_fit_residual(real).max() < 1e-6
    noisy = gradient_fit_residual(real + 0.1 * torch.randn_like(real))
    assert 0.07 < noisy.mean() < 0.1  # the noise minus what the fitted ramps absorb
    # each channel a perfect ramp, but along its own direction: not one of the course's gradients
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, 8), torch.linspace(-1, 1, 8), indexing="ij")
    crossed = torch.stack([0.5 * xs, 0.5 * ys, 0.5 * (xs - ys) / 2])[None]
    assert gradient_fit_residual(crossed).item() > 0.05


def test_gradient_fit_residual_agrees_with_the_shared_meter():
    """The course's own residual is the metric of ../shared/measure/part1_residual.py (its "course" fit)."""
    import importlib.util
    from pathlib import Path

    from utils.datasets.images import color_stats, gradient_fit_residual

    meter_path = Path(__file__).resolve().parents[2] / "shared" / "measure" / "part1_residual.py"
    if not meter_path.exists():
        pytest.skip(f"no shared meter at {meter_path}")
    spec = importlib.util.spec_from_file_location("part1_residual", meter_path)
    meter = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(meter)
    torch.manual_seed(0)
    images = normalize_img(gradient_images(200, (3, 8, 8), seed=2)) * 0.7 + 0.2 * torch.randn(200, 3, 8, 8)
    assert torch.allclose(gradient_fit_residual(images), meter.gradient_fit_residual(images, "course"), atol=1e-9)
    ours, theirs = color_stats(images), meter.color_stats(images)
    assert ours.keys() == theirs.keys() and all(abs(ours[k] - theirs[k]) < 1e-6 for k in ours)


def test_color_ratios_see_washed_out_samples():
    from utils.datasets.images import color_ratios

    real = normalize_img(gradient_images(500, (3, 8, 8), seed=0))
    assert all(abs(r - 1) < 1e-6 for r in color_ratios(real, real).values())
    pale = color_ratios(0.5 * real, real)  # every image pulled halfway to mid-grey
    assert all(abs(r - 0.5) < 0.02 for r in pale.values()), pale
    other_half = color_ratios(real[:250], real[250:])
    assert all(abs(r - 1) < 0.1 for r in other_half.values()), other_half


def test_check_reaches_noise_stops_a_schedule_that_ends_short_of_noise_and_says_why():
    from ddpm_course.part1 import Part1Recipe
    from utils.engine.model import check_reaches_noise

    recipe = Part1Recipe()
    assert check_reaches_noise(ref.NoiseSchedule(recipe.betas(ref))) < 1e-4
    assert check_reaches_noise(ref.NoiseSchedule(ref.linear_schedule(1000))) < 1e-4
    with pytest.raises(ValueError, match=r"alpha_bar_T = 0\.364 \(T = 100\).*60% of the image.*washed out"):
        check_reaches_noise(ref.NoiseSchedule(ref.linear_schedule(100)))


def _step_sizes(epochs: int, fit_config) -> list[float]:
    """The step size of every optimizer step `fit` takes, training a tiny model for `epochs` at lr 1e-3."""
    from torch.optim.optimizer import register_optimizer_step_pre_hook

    from utils.engine.training import fit

    seen = []
    hook = register_optimizer_step_pre_hook(lambda opt, *_: seen.append(opt.param_groups[0]["lr"]))
    data = normalize_img(gradient_images(64, (3, 4, 5), seed=0))
    config = TrainConfig(epochs=epochs, lr=1e-3, batch_size=16, device="cpu")
    try:
        fit(tiny_model(), ref.diffusion_loss, data, config, fit_config)
    finally:
        hook.remove()
    return seen


def test_the_step_size_cooldown_falls_linearly_to_zero_over_its_share_of_the_run():
    from utils.engine.training import FitConfig, cooldown_factor

    assert [cooldown_factor(p, 0.5) for p in (0.0, 0.5, 0.75, 1.0)] == [1.0, 1.0, 0.5, 0.0]
    with pytest.raises(ValueError, match="fraction of the run"):
        cooldown_factor(0.1, 0.0)
    seen = _step_sizes(4, FitConfig(lr_cooldown=0.5, progress=False))
    assert seen[:8] == [1e-3] * 8 and seen[-1] == pytest.approx(1e-3 / 8)
    assert all(a >= b for a, b in zip(seen, seen[1:]))


def test_the_cooldown_follows_a_time_budget_by_the_clock():
    from utils.engine.training import FitConfig

    seen = _step_sizes(1, FitConfig(minutes=0.01, lr_cooldown=1.0, progress=False))
    assert len(seen) > 4 and seen[0] == pytest.approx(1e-3, rel=0.05) and seen[-1] < 0.5e-3
    assert all(a >= b for a, b in zip(seen, seen[1:]))


def test_bf16_only_on_a_gpu_that_has_it_not_one_that_emulates_it(monkeypatch):
    """A T4 (Colab's free GPU) reports bf16 only with emulation counted: the recipe's bf16 stays off there."""
    import contextlib

    from utils.engine.training import bf16_autocast

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: including_emulation)
    assert isinstance(bf16_autocast(torch.device("cuda")), contextlib.nullcontext)
