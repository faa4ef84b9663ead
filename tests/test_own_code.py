"""A student's own, simple Part 1 and Part 2 get the whole Part 3 pipeline: the given loop with its checkpoints,
resume, weight average and time budget, then sampling, figures and scores, exactly as the reference does."""

import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from ddpm_course.fashion import evaluate
from ddpm_course.runs import PART3_NEEDS, Implementation, Run, make_unet, sample_in_batches
from graders import REPO_ROOT
from utils.engine.checkpoints import load_checkpoint, read_checkpoint
from utils.engine.sampling import respaced
from utils.engine.training import FitConfig, RunLog, TrainConfig, fit

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def student(tmp_path) -> Path:
    """A submission folder: the simple Part 1 above, and Parts 2 and 3 copied into the student's own files."""
    folder = tmp_path / "student"
    folder.mkdir()
    shutil.copy(REPO_ROOT / "tests" / "students" / "simple_part1.py", folder / "part1.py")
    shutil.copy(REPO_ROOT / "solutions" / "part2.py", folder / "part2.py")
    shutil.copy(REPO_ROOT / "solutions" / "part3.py", folder / "part3.py")
    return folder


def test_own_parts_get_checkpoints_resume_ema_samples_and_scores(student, tmp_path):
    impl = Implementation.load(str(student), PART3_NEEDS)
    assert impl.diffusion_loss.__module__.startswith("_graded_part1")  # the student's, not the reference's
    unet = impl.UnetConfig(image_shape=(1, 8, 8), channels=8, dim_mults=(1, 2), attention_levels=(1,))
    run_config = TrainConfig(epochs=1, batch_size=8, device="cpu")
    path = str(tmp_path / "run.pt")
    extras = FitConfig(ema_decay=0.9, checkpoint_path=path, progress=False)
    images = torch.rand(32, 1, 8, 8) * 2 - 1

    model = make_unet(Run(unet=unet, max_steps=20), impl)
    fit(model, impl.diffusion_loss, images, run_config, extras, log=RunLog())
    first = read_checkpoint(path)
    assert first["model_class"].endswith(":Unet") and first["schedule"]["class"].endswith(":NoiseSchedule")
    assert first["ema"]["n_averaged"] == 4 and first["step"] == 4

    log = RunLog()
    model = fit(
        make_unet(Run(unet=unet, max_steps=20), impl),
        impl.diffusion_loss,
        images,
        replace(run_config, epochs=2),
        replace(extras, resume_from=path),
        log=log,
    )
    assert read_checkpoint(path)["step"] == 8 and [s for s, _ in log.history["loss"]] == list(range(1, 9))

    loaded = load_checkpoint(path, "cpu", model_class=impl.Unet, schedule_class=impl.NoiseSchedule)
    assert type(loaded.model) is impl.Unet and type(loaded.model.noise_schedule) is impl.NoiseSchedule
    sampler = respaced(loaded.model, 5)
    samples = sample_in_batches(lambda start, size: impl.sample(sampler, size), 6, 4)
    assert samples.shape == (6, 1, 8, 8) and torch.isfinite(samples).all()


def test_own_parts_run_the_one_command_pipeline(student, tmp_path, capsys, fashion_data):
    from ddpm_course.fashion import main

    out = tmp_path / "run"
    quick = ["--impl", str(student), "--quick", "--device", "cpu", "--n-train", "128", "--n-eval", "16", "--out"]
    assert main([*quick, str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"Part 1: {student}/part1.py (yours)" in printed and "(floor " in printed and "FMNIST-KID" in printed
    assert {"checkpoint.pt", "samples.png", "denoising.gif", "metrics.json"} <= {p.name for p in out.iterdir()}
    assert main([*quick, str(out), "--resume", str(out / "checkpoint.pt"), "--epochs", "2"]) == 0
    assert read_checkpoint(out / "checkpoint.pt")["epoch"] == 2


def test_scores_come_from_the_implementation(student):
    """evaluate() scores with the implementation's own Part 3 functions, not fixed ones."""
    impl = Implementation.load(str(student), PART3_NEEDS)
    calls = {"feature_statistics": 0, "frechet_distance": 0, "kernel_inception_distance": 0}

    def counted(name, value):
        def function(*args):
            calls[name] += 1
            return value

        return function

    fake = replace(
        impl,
        feature_statistics=counted("feature_statistics", (torch.zeros(3), torch.eye(3))),
        frechet_distance=counted("frechet_distance", 1.0),
        kernel_inception_distance=counted("kernel_inception_distance", (0.25, 0.125)),
        fmnist_score=lambda a, c: 2.0,
    )
    scores = evaluate(torch.zeros(8, 1, 28, 28), torch.zeros(16, 1, 28, 28), fake)
    assert scores["fmnist_fid"] == 1.0 and scores["floor"] == 1.0 and scores["kid"] == 0.25
    assert scores["kid_se"] == 0.125 and scores["fmnist_score"] == 2.0
    assert all(count > 0 for count in calls.values()), calls
