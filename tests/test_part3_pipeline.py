"""Part 3's given machinery: checkpoints, resuming, the training extras, respaced sampling, the figures, the
one-command pipeline and the benchmark. Everything runs on a CPU with tiny models in seconds."""

import json
from contextlib import nullcontext
from dataclasses import replace

import pytest
import torch

from solutions.part1 import NoiseSchedule, diffusion_loss, linear_schedule, sample
from solutions.part2 import Unet, UnetConfig
from utils import get_device
from utils.engine.checkpoints import export_for_sampling, load_checkpoint, read_checkpoint, save_checkpoint
from utils.engine.sampling import RespacedModel, respaced
from utils.engine.training import FitConfig, RunLog, TrainConfig, bf16_autocast, fit, weight_average

pytestmark = pytest.mark.usefixtures("one_thread")


TINY_UNET = UnetConfig(image_shape=(1, 8, 8), channels=8, dim_mults=(1, 2), attention_levels=(1,))
CONFIG = TrainConfig(epochs=1, lr=1e-3, batch_size=8, device="cpu")
QUIET = FitConfig(progress=False)


def tiny_unet(T: int = 20) -> Unet:
    return Unet(TINY_UNET, NoiseSchedule(linear_schedule(T)))


def tiny_images(n: int = 32, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 1, 8, 8, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def train_tiny(model=None, images=None, log=None, **changes):
    """`fit` on tiny data: TrainConfig, FitConfig and SpeedConfig fields may all be changed by keyword."""
    from ddpm_course.speed import SpeedConfig

    train_fields = {k: v for k, v in changes.items() if k in TrainConfig.__dataclass_fields__}
    speed_fields = {k: v for k, v in changes.items() if k in SpeedConfig.__dataclass_fields__}
    fit_fields = {k: v for k, v in changes.items() if k not in train_fields and k not in speed_fields}
    return fit(
        model if model is not None else tiny_unet(),
        diffusion_loss,
        images if images is not None else tiny_images(),
        replace(CONFIG, **train_fields),
        replace(QUIET, **fit_fields),
        log=log,
        prepare=SpeedConfig(**speed_fields).prepare if speed_fields else None,
    )


def outputs(model, seed: int = 0) -> torch.Tensor:
    x = torch.randn(4, *model.image_shape, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return model(x, torch.tensor([1, 5, 10, 20]))


# --------------------------------------------------------------------------------------------------------------------
# Checkpoints


def test_checkpoint_round_trip_keeps_weights_schedule_config_and_history(tmp_path):
    log = RunLog()
    model = train_tiny(log=log, epochs=2)
    save_checkpoint(tmp_path / "run.pt", model, replace(CONFIG, epochs=2), epoch=2, log=log)
    loaded = load_checkpoint(tmp_path / "run.pt", "cpu", Unet, NoiseSchedule)
    assert type(loaded.model) is Unet and loaded.model.config == TINY_UNET
    assert loaded.train_config == replace(CONFIG, epochs=2) and loaded.epoch == 2
    assert loaded.history["loss"] == log.history["loss"]
    assert len(loaded.model.noise_schedule) == 20
    torch.testing.assert_close(loaded.model.noise_schedule.alpha_bars, model.noise_schedule.alpha_bars)
    torch.testing.assert_close(outputs(loaded.model), outputs(model))


def test_half_precision_checkpoint_keeps_the_schedule_exact(tmp_path):
    model = train_tiny(model=tiny_unet(1000))
    save_checkpoint(tmp_path / "half.pt", model, half=True)
    loaded = load_checkpoint(tmp_path / "half.pt", "cpu", Unet, NoiseSchedule).model
    assert loaded.noise_schedule.alpha_bars.dtype == torch.float32
    torch.testing.assert_close(loaded.noise_schedule.alpha_bars, model.noise_schedule.alpha_bars)
    torch.testing.assert_close(outputs(loaded), outputs(model), atol=1e-2, rtol=1e-2)


def test_loading_tells_what_is_wrong(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        load_checkpoint(tmp_path / "missing.pt")
    with pytest.raises(ValueError, match="no noise schedule"):
        save_checkpoint(tmp_path / "untrained.pt", Unet(TINY_UNET))
    model = train_tiny()
    save_checkpoint(tmp_path / "run.pt", model)

    class WiderUnet(Unet):
        def __init__(self, config, noise_schedule=None):
            super().__init__(replace(config, channels=16), noise_schedule)

    with pytest.raises(RuntimeError, match="does not fit this model"):
        load_checkpoint(tmp_path / "run.pt", "cpu", model_class=WiderUnet, schedule_class=NoiseSchedule)


def test_a_checkpoint_cannot_make_loading_import_other_modules():
    from utils.engine.checkpoints import import_class

    assert import_class("utils.engine.training:TrainConfig") is TrainConfig
    with pytest.raises(ValueError, match="outside this course's given code"):
        import_class("antigravity:Thing")
    with pytest.raises(ValueError, match="pass the class to rebuild it with"):  # the parts' classes are the caller's
        import_class("solutions.part2:Unet")


def test_training_resumes_from_its_checkpoint(tmp_path):
    path = str(tmp_path / "run.pt")
    images = tiny_images(32)  # 4 batches of 8 per epoch
    log = RunLog()
    train_tiny(images=images, log=log, epochs=1, checkpoint_path=path, ema_decay=0.9, log_every=3)
    first = read_checkpoint(path)
    assert first["epoch"] == 1 and first["step"] == 4 and first["optimizer"] is not None
    assert first["ema"]["n_averaged"] == 4

    resumed_log = RunLog()
    train_tiny(images=images, log=resumed_log, epochs=3, checkpoint_path=path, resume_from=path, ema_decay=0.9)
    state = read_checkpoint(path)
    assert state["epoch"] == 3 and state["step"] == 12
    assert state["ema"]["n_averaged"] == 12
    assert all(s["step"] == 12 for s in state["optimizer"]["state"].values())  # Adam continued, not restarted
    steps = [step for step, _ in resumed_log.history["loss"]]
    assert steps == list(range(1, 13))  # the first epoch's losses came back from the checkpoint
    assert resumed_log.history["loss"][:4] == log.history["loss"]


def test_a_time_budget_stops_training_and_leaves_a_checkpoint_to_resume(tmp_path):
    path = str(tmp_path / "budget.pt")
    log = RunLog()
    train_tiny(images=tiny_images(64), log=log, epochs=1000, minutes=0.0, checkpoint_path=path)
    state = read_checkpoint(path)
    assert state["step"] == 1 and state["epoch"] == 1 and len(log.history["loss"]) == 1  # stopped after one step
    train_tiny(images=tiny_images(64), epochs=2, resume_from=path, checkpoint_path=path)
    assert read_checkpoint(path)["step"] == 1 + 8


def test_resuming_refuses_what_cannot_continue(tmp_path):
    model = train_tiny(checkpoint_path=str(tmp_path / "run.pt"))
    with pytest.raises(ValueError, match=r"another noise schedule \(T = 20.*build the model with the saved schedule"):
        train_tiny(model=tiny_unet(50), epochs=2, resume_from=str(tmp_path / "run.pt"))
    save_checkpoint(tmp_path / "sampling_only.pt", model)
    with pytest.raises(ValueError, match="no optimizer state"):
        train_tiny(epochs=2, resume_from=str(tmp_path / "sampling_only.pt"))


def test_export_for_sampling_bakes_in_the_average_and_drops_the_optimizer(tmp_path):
    model = train_tiny(epochs=2, checkpoint_path=str(tmp_path / "run.pt"), ema_decay=0.5)  # the averaged weights
    export_for_sampling(tmp_path / "run.pt", tmp_path / "small.pt")
    state = read_checkpoint(tmp_path / "small.pt")
    assert state["optimizer"] is None and state["ema"] is None
    assert (tmp_path / "small.pt").stat().st_size < (tmp_path / "run.pt").stat().st_size / 2
    torch.testing.assert_close(
        outputs(load_checkpoint(tmp_path / "small.pt", "cpu", Unet, NoiseSchedule).model),
        outputs(model.eval()),
        atol=2e-2,
        rtol=2e-2,
    )


def test_nan_loss_stops_unet_training_with_a_clear_message():
    images = tiny_images()
    images[3] = float("nan")
    with pytest.raises(FloatingPointError, match=r"loss became nan at step 1: training diverged.*in \[-1, 1\]"):
        train_tiny(images=images, batch_size=32)


def test_shipped_checkpoint_samples():
    from ddpm_course.fashion import SHIPPED_CHECKPOINT, SHIPPED_COMMAND

    assert SHIPPED_CHECKPOINT.stat().st_size < 5e6
    loaded = load_checkpoint(SHIPPED_CHECKPOINT, "cpu", Unet, NoiseSchedule)
    assert loaded.model.image_shape == (1, 28, 28) and len(loaded.model.noise_schedule) == 1000
    assert loaded.history["loss"] and loaded.train_config is not None
    assert f"--epochs {loaded.train_config.epochs} " in SHIPPED_COMMAND  # the command says what made the file
    images = sample(respaced(loaded.model, 3), 2)
    assert images.shape == (2, 1, 28, 28) and torch.isfinite(images).all()


# --------------------------------------------------------------------------------------------------------------------
# Training extras, respacing and the device


def test_weight_average_is_an_ema_that_fit_copies_back():
    model = torch.nn.Linear(1, 1, bias=False)
    torch.nn.init.zeros_(model.weight)
    ema = weight_average(model, decay=0.9)
    with torch.no_grad():
        model.weight.fill_(1.0)
    ema.update_parameters(model)  # the first update takes the weights as they are
    with torch.no_grad():
        model.weight.fill_(2.0)
    ema.update_parameters(model)
    assert ema.module.weight.item() == pytest.approx(0.9 * 1.0 + 0.1 * 2.0)
    with pytest.raises(ValueError, match="decay"):
        weight_average(model, decay=1.0)
    # fit returns the averaged weights: with decay 0.5 they differ from the last step's
    raw = train_tiny(epochs=2)
    averaged = train_tiny(epochs=2, ema_decay=0.5)
    assert not torch.allclose(outputs(raw), outputs(averaged))


def test_mixed_precision_is_a_no_op_off_cuda():
    assert isinstance(bf16_autocast(torch.device("cpu"), True), nullcontext)
    assert isinstance(bf16_autocast(torch.device("mps"), True), nullcontext)
    assert isinstance(bf16_autocast(torch.device("cuda"), False), nullcontext)
    # a CPU run with the CUDA recipe's flags trains as usual
    train_tiny(images=tiny_images(16), mixed_precision=True, ema_decay=0.999)


def test_respacing_keeps_alpha_bar_on_the_chosen_steps():
    model = tiny_unet(1000)
    same = RespacedModel(model, 1000)
    torch.testing.assert_close(same.noise_schedule.betas, model.noise_schedule.betas, atol=1e-6, rtol=1e-4)
    short = RespacedModel(model, 10)
    assert short.taus[0] == 1 and short.taus[-1] == 1000 and len(short.noise_schedule) == 10
    assert type(short.noise_schedule) is NoiseSchedule
    torch.testing.assert_close(short.noise_schedule.alpha_bars, model.noise_schedule.alpha_bars[short.taus - 1])
    assert respaced(model, None) is model and respaced(model, 1000) is model
    assert sample(short, 2).shape == (2, 1, 8, 8)
    with pytest.raises(ValueError, match="1..T = 1000"):
        RespacedModel(model, 0)


def test_device_selection_without_cuda(monkeypatch):
    from ddpm_course.runs import default_run

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert get_device() == torch.device("cpu")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert get_device() == torch.device("mps")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert get_device() == torch.device("cuda")
    assert get_device("cpu") == torch.device("cpu")
    cuda, cpu = default_run(torch.device("cuda"), UnetConfig), default_run(torch.device("cpu"), UnetConfig)
    assert cuda.fit.mixed_precision and cuda.fit.ema_decay and cuda.unet == UnetConfig() and cuda.sampling_steps is None
    assert not cpu.fit.mixed_precision and cpu.sampling_steps < 1000 and cpu.train.device == "cpu"
    assert cuda.speed.fused_blocks and not cpu.speed.fused_blocks and cuda.fit.minutes == 5.0
    conditional = default_run(torch.device("cuda"), UnetConfig, conditional=True)
    assert conditional.fit.minutes is None and conditional.train.epochs == 20


# --------------------------------------------------------------------------------------------------------------------
# Figures


def test_denoising_strip_and_gif():
    from utils.figures.animation import denoising_gif
    from utils.figures.plotting import frame_indices, plot_denoising

    assert frame_indices(1001, 10)[0] == 0 and frame_indices(1001, 10)[-1] == 1000
    gaps = torch.tensor(frame_indices(1001, 10)).diff()
    assert (gaps[1:] <= gaps[:-1]).all()  # denser towards x_0
    trajectory = torch.randn(21, 5, 1, 8, 8)
    gif = denoising_gif(trajectory, n_frames=6)
    assert gif[:6] == b"GIF89a"
    fig = plot_denoising(trajectory, n_samples=2, n_frames=4)
    assert len(fig.axes) == 2 * 4


def test_score_plot_shows_the_floor():
    from utils.figures.part3 import plot_score_vs_floor
    from utils.figures.plotting import image_grid

    row = {"n": 64, "fmnist_fid": 3.0, "fmnist_fid_sd": 0.5, "floor": 1.0, "floor_sd": 0.2}
    row |= {"kid": 0.1, "kid_se": 0.05, "kid_floor": 0.0, "kid_floor_sd": 0.04}
    fig = plot_score_vs_floor({"ours": row})
    for ax, metric in zip(fig.axes, ("FMNIST-FID", "FMNIST-KID")):
        assert [t.get_text() for t in ax.get_xticklabels()][-1].startswith("real vs real")
        assert metric in ax.get_title() and "N = 64" in ax.get_title()
    labels = [t.get_text() for t in fig.axes[0].texts]
    assert labels == ["3.00 ± 0.50", "1.00 ± 0.20"]
    assert image_grid(torch.zeros(5, 1, 4, 4), n_columns=3, padding=1).shape == (9, 14)


# --------------------------------------------------------------------------------------------------------------------
# The one-command pipeline and the benchmark


def test_pipeline_quick_run_writes_everything_and_reloads(tmp_path, fashion_data, capsys):
    from ddpm_course.fashion import main

    out = tmp_path / "run"
    assert main(["--quick", "--device", "cpu", "--n-train", "128", "--n-eval", "16", "--out", str(out)]) == 0
    written = {p.name for p in out.iterdir()}
    assert written >= {"checkpoint.pt", "samples.png", "denoising.png", "denoising.gif", "loss.png", "metrics.json"}
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["device"] == "cpu" and metrics["final_loss"] > 0
    assert "scores.png" in written and metrics["fmnist_fid"] > 0 and metrics["floor"] > 0
    assert metrics["n"] == 16 and metrics["floor_sd"] > 0 and metrics["fmnist_fid_sd"] > 0 and metrics["kid_se"] > 0
    printed = capsys.readouterr().out
    assert "(floor " in printed and "FMNIST-KID" in printed and "N = 16" in printed
    # no training: sample and draw from the checkpoint just written
    again = tmp_path / "again"
    assert (
        main(
            ["--checkpoint", str(out / "checkpoint.pt"), "--quick", "--n-eval", "4", "--no-score", "--out", str(again)]
        )
        == 0
    )
    assert (again / "samples.png").is_file()


# The benchmark at its smallest: two images a step, one step timed after one of warm-up, T = 2.
TINY_BENCHMARK = ["--device", "cpu", "--batch-size", "2", "--train-steps", "1", "--warmup-steps", "1"]
TINY_BENCHMARK += ["--sampling-steps", "2"]


def test_benchmark_runs_tiny_on_cpu(capsys, monkeypatch):
    from ddpm_course import benchmark

    monkeypatch.setattr(benchmark, "peer_available", lambda: False)
    assert benchmark.main([*TINY_BENCHMARK, "--no-fid"]) == 0
    printed = capsys.readouterr().out
    assert "our Unet" in printed and "pip install" in printed and "diffusers" in printed


def test_benchmark_peer_has_the_course_size(capsys):
    pytest.importorskip("diffusers")
    from ddpm_course import benchmark

    peer = benchmark.DiffusersPeer()
    assert 1.6e6 < sum(p.numel() for p in peer.parameters()) < 1.8e6
    assert peer(torch.randn(2, 1, 28, 28), torch.tensor([1, 1000])).shape == (2, 1, 28, 28)
    assert benchmark.main([*TINY_BENCHMARK, "--no-fid"]) == 0
    assert "ours / peer" in capsys.readouterr().out


def test_benchmark_scores_after_a_tiny_budget(tmp_path, fashion_data, capsys, monkeypatch):
    from ddpm_course import benchmark

    monkeypatch.setattr(benchmark, "peer_available", lambda: False)
    budget = ["--budget-s", "0", "--fid-n", "16", "--n-train", "16", "--out", str(tmp_path / "bench")]
    assert benchmark.main([*TINY_BENCHMARK, *budget]) == 0
    assert {"checkpoint.pt", "samples.png"} <= {p.name for p in (tmp_path / "bench").iterdir()}
    printed = capsys.readouterr().out
    assert "FMNIST-FID after 0 s" in printed and "(floor " in printed and "FMNIST-KID" in printed
    assert "mean confidence" in printed
